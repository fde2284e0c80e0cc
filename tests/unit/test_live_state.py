"""LiveGovernanceState: control snapshots applied incrementally onto the domain state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from ecoshare.governance.control_plane import ControlSnapshot
from ecoshare.governance.live_state import LiveGovernanceState

T0 = "2020-03-16T08:00:00+00:00"


def _partner(partner_id: str, name: str | None = None) -> dict[str, Any]:
    return {"partner_id": partner_id, "name": name or partner_id, "roles": ["publisher"]}


def _agreement(agreement_id: str, subscriber: str = "carrier-x") -> dict[str, Any]:
    return {
        "agreement_id": agreement_id,
        "version": 1,
        "publishers": ["shop-a"],
        "subscriber": subscriber,
        "event_types": ["StoreStatusChanged"],
        "purpose": "routing",
        "valid_from": T0,
    }


def _consent(consent_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "consent_id": consent_id,
        "subject": "owner-anna",
        "controller": "shop-a",
        "grantee": "*",
        "purpose": "routing",
        "scope": ["personal"],
        "given_at": T0,
        **changes,
    }


def _snapshot(
    version: int,
    partners: Mapping[str, Any] | None = None,
    agreements: Mapping[str, Any] | None = None,
    consents: Mapping[str, Any] | None = None,
) -> ControlSnapshot:
    return ControlSnapshot(
        version=version,
        partners=partners or {},
        agreements=agreements or {},
        consents=consents or {},
    )


def test_a_snapshot_becomes_the_domain_state() -> None:
    live = LiveGovernanceState()
    state = live.follow(
        _snapshot(
            1,
            partners={"shop-a": _partner("shop-a")},
            agreements={"a-1": _agreement("a-1")},
            consents={"k-1": _consent("k-1")},
        )
    )
    assert set(state.partners) == {"shop-a"}
    assert set(state.agreements) == {"a-1"}
    assert state.candidate_subscribers("StoreStatusChanged") == ["carrier-x"]
    assert live.snapshot_version == 1
    assert live.invalid_records == {}


def test_the_same_version_returns_the_same_state_without_reading_it() -> None:
    live = LiveGovernanceState()
    first = live.follow(_snapshot(3, partners={"shop-a": _partner("shop-a")}))
    # Same version, different content: the version is what says nothing changed.
    again = live.follow(_snapshot(3, partners={}))
    assert again is first
    assert set(again.partners) == {"shop-a"}


def test_only_changed_records_are_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    validated: list[str] = []
    original = BaseModel.model_validate.__func__  # type: ignore[attr-defined]

    def counting(cls: type[BaseModel], /, value: Any, **kwargs: Any) -> BaseModel:
        validated.append(cls.__name__)
        return original(cls, value, **kwargs)  # type: ignore[no-any-return]

    live = LiveGovernanceState()
    partners = {"shop-a": _partner("shop-a"), "shop-b": _partner("shop-b")}
    consents = {"k-1": _consent("k-1"), "k-2": _consent("k-2")}
    live.follow(_snapshot(1, partners=partners, consents=consents))
    monkeypatch.setattr(BaseModel, "model_validate", classmethod(counting))
    withdrawn = {**consents, "k-2": _consent("k-2", withdrawn_at="2020-03-16T09:00:00+00:00")}
    state = live.follow(_snapshot(2, partners=dict(partners), consents=withdrawn))
    assert validated == ["ConsentRecord"]
    assert state.consents.get("k-2") is not None
    assert state.consents.get("k-2").withdrawn_at is not None  # type: ignore[union-attr]


def test_records_absent_from_the_next_snapshot_are_removed() -> None:
    live = LiveGovernanceState()
    live.follow(
        _snapshot(
            1,
            partners={"shop-a": _partner("shop-a"), "shop-b": _partner("shop-b")},
            agreements={"a-1": _agreement("a-1"), "a-2": _agreement("a-2", "carrier-y")},
        )
    )
    state = live.follow(
        _snapshot(2, partners={"shop-a": _partner("shop-a")}, agreements={"a-1": _agreement("a-1")})
    )
    assert set(state.partners) == {"shop-a"}
    assert set(state.agreements) == {"a-1"}
    assert state.candidate_subscribers("StoreStatusChanged") == ["carrier-x"]


def test_an_invalid_record_keeps_the_previous_valid_version_and_is_reported() -> None:
    live = LiveGovernanceState()
    live.follow(_snapshot(1, partners={"shop-a": _partner("shop-a", "Shop A")}))
    broken = {"partner_id": "shop-a", "name": "Shop A", "roles": ["astronaut"]}
    state = live.follow(_snapshot(2, partners={"shop-a": broken}))
    assert state.partner("shop-a") is not None
    assert state.partner("shop-a").name == "Shop A"  # type: ignore[union-attr]
    assert set(live.invalid_records) == {("partner", "shop-a")}
    assert "roles" in live.invalid_records[("partner", "shop-a")]
    assert live.snapshot_version == 2


def test_an_invalid_new_record_is_not_admitted_and_a_fix_clears_the_report() -> None:
    live = LiveGovernanceState()
    state = live.follow(_snapshot(1, consents={"k-1": {"consent_id": "k-1"}}))
    assert state.consents.get("k-1") is None
    assert ("consent", "k-1") in live.invalid_records
    state = live.follow(_snapshot(2, consents={"k-1": _consent("k-1")}))
    assert state.consents.get("k-1") is not None
    assert live.invalid_records == {}


def test_state_versions_change_with_content_only() -> None:
    live = LiveGovernanceState()
    partners = {"shop-a": _partner("shop-a")}
    first = live.follow(_snapshot(1, partners=partners))
    # A new snapshot version with equal records: a state with the same content version.
    second = live.follow(_snapshot(2, partners={"shop-a": _partner("shop-a")}))
    assert second.version == first.version
    third = live.follow(_snapshot(3, partners={"shop-a": _partner("shop-a", "renamed")}))
    assert third.version != first.version
