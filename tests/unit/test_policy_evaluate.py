"""evaluate_event on hand-written cases: precedence of reasons, agreements, consent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.config.settings import REPO_ROOT
from ecoshare.domain.agreements import Agreement, FieldAction
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.errors import HashKeyMissingError
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.policy import (
    AgreementRateLimiter,
    Decision,
    WithholdReason,
    evaluate_event,
)
from ecoshare.domain.projection import hash_value, subscriber_hash_key
from ecoshare.domain.state import GovernanceState

CATALOG = load_catalog(REPO_ROOT / "schemas")
CLASSES = CATALOG.classification("StoreStatusChanged")
NOW = datetime(2020, 3, 16, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
KEYS = {name: subscriber_hash_key(b"secret", name) for name in ("carrier-x", "carrier-y")}

RECORD: dict[str, Any] = {
    "event_id": "0b0a5f4e-6a43-4f43-9d0e-8f4c6f1c9a11",
    "publisher_id": "shop-a",
    "location_id": "sp-0001",
    "location_name": "Primera Centrum",
    "status": "CLOSED",
    "reason": "lockdown",
    "opening_hours_today": None,
    "effective_from": NOW,
    "effective_until": None,
    "street": "Damrak",
    "house_number": "1",
    "postal_code": "1012 AB",
    "city": "Amsterdam",
    "latitude": 52.374526,
    "longitude": 4.897912,
    "contact_subject_id": "owner-anna",
    "contact_name": "Anna de Vries",
    "contact_phone": "+31 6 12345678",
    "occurred_at": NOW,
    "published_at": NOW,
}


def _partner(partner_id: str, enabled: bool = True) -> Partner:
    return Partner(
        partner_id=partner_id,
        name=partner_id,
        roles=frozenset({Role.PUBLISHER, Role.SUBSCRIBER}),
        enabled=enabled,
    )


def _agreement(agreement_id: str = "agr-1", **changes: Any) -> Agreement:
    data: dict[str, Any] = {
        "agreement_id": agreement_id,
        "version": 1,
        "publishers": ["shop-a"],
        "subscriber": "carrier-x",
        "event_types": ["StoreStatusChanged"],
        "purpose": "routing",
        "valid_from": NOW - DAY,
        "fields": {"status": "deliver", "postal_code": "deliver"},
    }
    data.update(changes)
    return Agreement.model_validate(data)


def _consent(consent_id: str = "c-1", **changes: Any) -> ConsentRecord:
    data: dict[str, Any] = {
        "consent_id": consent_id,
        "subject": "owner-anna",
        "controller": "shop-a",
        "grantee": "carrier-x",
        "purpose": "routing",
        "scope": ["contact_phone"],
        "given_at": NOW - DAY,
    }
    data.update(changes)
    return ConsentRecord.model_validate(data)


def _state(
    agreements: list[Agreement],
    consents: Sequence[ConsentRecord] = (),
    disabled: tuple[str, ...] = (),
    missing: tuple[str, ...] = (),
) -> GovernanceState:
    partners = [
        _partner(name, enabled=name not in disabled)
        for name in ("shop-a", "carrier-x", "carrier-y")
        if name not in missing
    ]
    return GovernanceState(partners, agreements, consents)


def _evaluate(
    state: GovernanceState,
    record: dict[str, Any] | None = None,
    publisher_id: str = "shop-a",
    now: datetime = NOW,
    limiter: AgreementRateLimiter | None = None,
) -> list[Decision]:
    return evaluate_event(
        record or RECORD, "StoreStatusChanged", publisher_id, state, CLASSES, now, KEYS, limiter
    )


def _only(decisions: list[Decision]) -> Decision:
    assert len(decisions) == 1
    return decisions[0]


def test_delivers_the_granted_fields() -> None:
    decision = _only(_evaluate(_state([_agreement()])))
    assert decision.delivered
    assert decision.reason is None
    assert (decision.agreement_id, decision.agreement_version) == ("agr-1", 1)
    assert decision.record == {"status": "CLOSED", "postal_code": "1012 AB"}
    assert decision.fields_delivered == ("status", "postal_code")
    assert len(decision.fields_dropped) == len(CLASSES) - 2
    assert decision.event_id == RECORD["event_id"]


def test_no_candidates_no_decisions() -> None:
    assert _evaluate(_state([_agreement(event_types=["LocationAvailability"])])) == []


@pytest.mark.parametrize(
    ("state", "publisher_id", "reason", "agreement_id"),
    [
        (_state([_agreement()], disabled=("shop-a",)), "shop-a", "publisher_disabled", "agr-1"),
        (_state([_agreement()], missing=("shop-a",)), "shop-a", "publisher_disabled", "agr-1"),
        (_state([_agreement()], disabled=("carrier-x",)), "shop-a", "subscriber_disabled", "agr-1"),
        (_state([_agreement()], missing=("carrier-x",)), "shop-a", "subscriber_disabled", "agr-1"),
        (_state([_agreement(publishers=["shop-b"])]), "shop-a", "no_agreement", None),
        (
            _state([_agreement(valid_from=NOW + DAY)], disabled=("carrier-x",)),
            "shop-a",
            "subscriber_disabled",
            "agr-1",
        ),
        (_state([_agreement(valid_from=NOW + DAY)]), "shop-a", "agreement_not_in_force", "agr-1"),
        (
            _state([_agreement(valid_until=NOW)]),
            "shop-a",
            "agreement_not_in_force",
            "agr-1",
        ),
        (
            _state(
                [_agreement(row_filters=[{"field": "status", "op": "equals", "value": "OPEN"}])]
            ),
            "shop-a",
            "row_filter",
            "agr-1",
        ),
    ],
)
def test_reasons_follow_the_documented_precedence(
    state: GovernanceState, publisher_id: str, reason: str, agreement_id: str | None
) -> None:
    decision = _only(_evaluate(state, publisher_id=publisher_id))
    assert decision.outcome == "withheld"
    assert decision.reason == WithholdReason(reason)
    assert decision.agreement_id == agreement_id
    assert decision.record is None
    assert decision.fields_delivered == decision.fields_dropped == ()


def test_the_first_applicable_agreement_by_id_is_used() -> None:
    closed_only = _agreement(
        "agr-1",
        row_filters=[{"field": "status", "op": "equals", "value": "OPEN"}],
        fields={"status": "deliver"},
    )
    expired = _agreement("agr-2", valid_until=NOW - DAY / 2, fields={"city": "deliver"})
    everything = _agreement("agr-3", fields={"location_id": "deliver"})
    later = _agreement("agr-4", fields={"street": "deliver"})
    decision = _only(_evaluate(_state([later, everything, expired, closed_only])))
    assert decision.agreement_id == "agr-3"
    assert decision.record == {"location_id": "sp-0001"}


def test_a_row_filter_miss_names_the_first_agreement_in_force() -> None:
    expired = _agreement("agr-1", valid_until=NOW - DAY / 2)
    filtered = _agreement(
        "agr-2", row_filters=[{"field": "postal_code", "prefix_range": ["20", "29"]}]
    )
    decision = _only(_evaluate(_state([expired, filtered])))
    assert decision.reason is WithholdReason.ROW_FILTER
    assert decision.agreement_id == "agr-2"


def test_one_decision_per_candidate_subscriber() -> None:
    state = _state(
        [
            _agreement("agr-1"),
            _agreement("agr-2", subscriber="carrier-y", publishers=["shop-b"]),
            _agreement("agr-3", subscriber="carrier-z"),
        ]
    )
    decisions = _evaluate(state)
    assert [(d.subscriber_id, d.outcome, d.reason) for d in decisions] == [
        ("carrier-x", "delivered", None),
        ("carrier-y", "withheld", WithholdReason.NO_AGREEMENT),
        ("carrier-z", "withheld", WithholdReason.SUBSCRIBER_DISABLED),
    ]


# --- personal fields and consent ------------------------------------------------------


PERSONAL = {"contact_name": "deliver", "contact_phone": {"action": "mask", "keep_last": 4}}


def test_personal_fields_need_an_active_matching_consent() -> None:
    agreement = _agreement(fields={"status": "deliver", **PERSONAL})
    decision = _only(_evaluate(_state([agreement], [_consent()])))
    assert decision.record == {
        "status": "CLOSED",
        "contact_name": None,
        "contact_phone": "**********5678",
    }
    assert decision.consent_ids == ("c-1",)
    assert decision.fields_delivered == ("status", "contact_phone")
    assert decision.personal_fields_without_consent == ("contact_name",)
    assert "contact_name" in decision.fields_dropped
    assert decision.fields_transformed == {"contact_phone": FieldAction.MASK}


@pytest.mark.parametrize(
    "consent",
    [
        _consent(subject="owner-bram"),
        _consent(controller="shop-b"),
        _consent(grantee="carrier-y"),
        _consent(purpose="marketing"),
        _consent(scope=["contact_name"]),
        _consent(given_at=NOW + timedelta(milliseconds=1)),
        _consent(expires_at=NOW),
        _consent(withdrawn_at=NOW),
    ],
    ids=["subject", "controller", "grantee", "purpose", "scope", "future", "expired", "withdrawn"],
)
def test_a_consent_that_does_not_match_does_not_count(consent: ConsentRecord) -> None:
    agreement = _agreement(fields={"contact_phone": "deliver"})
    decision = _only(_evaluate(_state([agreement], [consent])))
    assert decision.record == {"contact_phone": None}
    assert decision.consent_ids == ()
    assert decision.personal_fields_without_consent == ("contact_phone",)


def test_wildcard_grantee_and_personal_scope_match_every_personal_field() -> None:
    agreement = _agreement(fields=PERSONAL)
    consent = _consent(grantee="*", scope=["personal"])
    decision = _only(_evaluate(_state([agreement], [consent])))
    assert decision.record == {"contact_name": "Anna de Vries", "contact_phone": "**********5678"}
    assert decision.personal_fields_without_consent == ()


def test_the_consent_purpose_of_the_agreement_is_the_one_that_counts() -> None:
    agreement = _agreement(fields={"contact_phone": "deliver"}, consent_purpose="contact-at-door")
    routing = _only(_evaluate(_state([agreement], [_consent()])))
    assert routing.record == {"contact_phone": None}
    door = _only(_evaluate(_state([agreement], [_consent(purpose="contact-at-door")])))
    assert door.record == {"contact_phone": "+31 6 12345678"}


def test_without_a_subject_there_is_no_consent() -> None:
    agreement = _agreement(fields={"contact_phone": "deliver"})
    record = {**RECORD, "contact_subject_id": None}
    decision = _only(_evaluate(_state([agreement], [_consent()]), record=record))
    assert decision.record == {"contact_phone": None}


def test_withdrawal_applies_to_the_very_next_event() -> None:
    agreement = _agreement(fields={"contact_phone": "deliver"})
    state = _state([agreement], [_consent()])
    assert _only(_evaluate(state)).record == {"contact_phone": "+31 6 12345678"}
    state = state.with_consent(_consent(withdrawn_at=NOW))
    assert _only(_evaluate(state)).record == {"contact_phone": None}


def test_hashes_use_the_subscribers_key() -> None:
    agreement = _agreement(fields={"location_id": "hash"})
    decision = _only(_evaluate(_state([agreement])))
    assert decision.record == {"location_id": hash_value("sp-0001", KEYS["carrier-x"])}
    with pytest.raises(HashKeyMissingError):
        evaluate_event(
            RECORD, "StoreStatusChanged", "shop-a", _state([agreement]), CLASSES, NOW, {}
        )


def test_rate_limits_withhold_once_exhausted() -> None:
    agreement = _agreement(limits={"max_events_per_minute": 2})
    state = _state([agreement])
    limiter = AgreementRateLimiter()
    outcomes = [_only(_evaluate(state, limiter=limiter)).reason for _ in range(3)]
    assert outcomes == [None, None, WithholdReason.RATE_LIMITED]
    later = _only(_evaluate(state, now=NOW + timedelta(seconds=30), limiter=limiter))
    assert later.delivered
    assert _only(_evaluate(state)).delivered  # no limiter, no limits


def test_filtered_events_do_not_use_up_the_rate_limit() -> None:
    agreement = _agreement(
        limits={"max_events_per_day": 1},
        row_filters=[{"field": "status", "op": "in", "values": ["CLOSED"]}],
    )
    state = _state([agreement])
    limiter = AgreementRateLimiter()
    opened = {**RECORD, "status": "OPEN"}
    assert (
        _only(_evaluate(state, record=opened, limiter=limiter)).reason is WithholdReason.ROW_FILTER
    )
    assert _only(_evaluate(state, limiter=limiter)).delivered


def test_row_filters_pass_needs_every_filter() -> None:
    agreement = _agreement(
        row_filters=[
            {"field": "status", "op": "equals", "value": "CLOSED"},
            {"field": "postal_code", "prefix_range": ["10", "19"]},
        ]
    )
    assert agreement.row_filters_pass(RECORD)
    assert not agreement.row_filters_pass({**RECORD, "postal_code": "2511 CV"})
    assert _agreement().row_filters_pass({})
