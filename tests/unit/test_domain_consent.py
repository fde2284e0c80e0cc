"""Consent records: activity over time, and the index that finds matching consents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from ecoshare.domain.classification import Classification
from ecoshare.domain.consent import ConsentIndex, ConsentRecord

T0 = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _consent(**changes: Any) -> ConsentRecord:
    data: dict[str, Any] = {
        "consent_id": "c-1",
        "subject": "owner-anna",
        "controller": "shop-a",
        "grantee": "carrier-x",
        "purpose": "last-mile-routing",
        "scope": ["contact_phone"],
        "given_at": T0,
    }
    data.update(changes)
    return ConsentRecord.model_validate(data)


def test_active_from_given_at_until_expiry_exclusive() -> None:
    consent = _consent(expires_at=T0 + HOUR)
    assert not consent.is_active(T0 - timedelta(milliseconds=1))
    assert consent.is_active(T0)
    assert consent.is_active(T0 + HOUR - timedelta(milliseconds=1))
    assert not consent.is_active(T0 + HOUR)


def test_withdrawal_ends_activity_at_the_moment_of_withdrawal() -> None:
    consent = _consent(withdrawn_at=T0 + HOUR)
    assert consent.is_active(T0 + HOUR - timedelta(milliseconds=1))
    assert not consent.is_active(T0 + HOUR)
    assert not _consent(withdrawn_at=T0).is_active(T0)
    assert not _consent(withdrawn_at=T0 - HOUR).is_active(T0 + HOUR)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"scope": []}, "scope"),
        ({"expires_at": T0}, "expires_at"),
        ({"given_at": datetime(2020, 3, 16)}, "given_at"),
        ({"grantee": "Carrier X"}, "grantee"),
        ({"controller": "*"}, "controller"),
        ({"subject": ""}, "subject"),
    ],
)
def test_invalid_consents_name_the_field(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        _consent(**changes)


def test_scope_covers_field_names_and_classification_names() -> None:
    consent = _consent(scope=["contact_phone", "personal"])
    assert consent.covers_field("contact_phone", Classification.PERSONAL)
    assert consent.covers_field("contact_name", Classification.PERSONAL)
    assert not _consent().covers_field("contact_name", Classification.PERSONAL)
    assert not consent.covers_field("reason", Classification.INTERNAL)


def _lookup(index: ConsentIndex, **changes: Any) -> list[str]:
    query: dict[str, Any] = {
        "subject": "owner-anna",
        "controller": "shop-a",
        "grantee": "carrier-x",
        "purpose": "last-mile-routing",
        "field": "contact_phone",
        "at": T0 + HOUR,
    }
    query.update(changes)
    return [consent.consent_id for consent in index.active_consents_for(**query)]


def test_index_matches_subject_controller_grantee_purpose_scope_and_time() -> None:
    index = ConsentIndex(
        [
            _consent(consent_id="c-1"),
            _consent(consent_id="c-2", grantee="*", scope=["personal"]),
            _consent(consent_id="c-3", purpose="marketing"),
            _consent(consent_id="c-4", grantee="carrier-y"),
            _consent(consent_id="c-5", withdrawn_at=T0 + timedelta(minutes=30)),
            _consent(consent_id="c-6", controller="shop-b"),
        ]
    )
    assert _lookup(index) == ["c-1", "c-2"]
    assert _lookup(index, grantee="carrier-y") == ["c-2", "c-4"]
    assert _lookup(index, field="contact_name") == ["c-2"]
    assert _lookup(index, purpose="marketing") == ["c-3"]
    assert _lookup(index, controller="shop-b") == ["c-6"]
    assert _lookup(index, subject="owner-bram") == []
    assert _lookup(index, at=T0 - HOUR) == []
    assert _lookup(index, at=T0 + timedelta(minutes=10)) == ["c-1", "c-2", "c-5"]


def test_a_republished_consent_replaces_the_earlier_record() -> None:
    index = ConsentIndex([_consent()])
    withdrawn = index.with_consent(_consent(withdrawn_at=T0 + timedelta(minutes=1)))
    assert _lookup(index) == ["c-1"]
    assert _lookup(withdrawn) == []
    assert len(withdrawn) == 1
    moved = index.with_consent(_consent(subject="owner-bram"))
    assert _lookup(moved) == []
    assert _lookup(moved, subject="owner-bram") == ["c-1"]
    assert moved.consents_of("owner-anna", "shop-a") == ()


def test_removing_consents_returns_new_indexes() -> None:
    index = ConsentIndex([_consent(consent_id="c-1"), _consent(consent_id="c-2")])
    smaller = index.without_consent("c-1")
    assert [consent.consent_id for consent in smaller] == ["c-2"]
    assert "c-1" in index
    assert "c-1" not in smaller
    assert smaller.without_consent("c-9") is smaller
    assert len(smaller.without_consent("c-2")) == 0
    assert ConsentIndex([_consent(), _consent(purpose="x")]).get("c-1") == _consent(purpose="x")
