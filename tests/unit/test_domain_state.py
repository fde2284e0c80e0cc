"""GovernanceState: snapshots, versions and lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.state import GovernanceState

T0 = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)


def _agreement(agreement_id: str, subscriber: str, **changes: Any) -> Agreement:
    data: dict[str, Any] = {
        "agreement_id": agreement_id,
        "version": 1,
        "publishers": ["shop-a"],
        "subscriber": subscriber,
        "event_types": ["StoreStatusChanged"],
        "purpose": "routing",
        "valid_from": T0,
    }
    data.update(changes)
    return Agreement.model_validate(data)


def _partner(partner_id: str, **changes: Any) -> Partner:
    data: dict[str, Any] = {
        "partner_id": partner_id,
        "name": partner_id,
        "roles": [Role.PUBLISHER, Role.SUBSCRIBER],
    }
    data.update(changes)
    return Partner.model_validate(data)


def _consent(consent_id: str, **changes: Any) -> ConsentRecord:
    data: dict[str, Any] = {
        "consent_id": consent_id,
        "subject": "owner-anna",
        "controller": "shop-a",
        "grantee": "*",
        "purpose": "routing",
        "scope": ["personal"],
        "given_at": T0,
    }
    data.update(changes)
    return ConsentRecord.model_validate(data)


def _state() -> GovernanceState:
    return GovernanceState(
        partners=[_partner("shop-a"), _partner("carrier-x"), _partner("carrier-y")],
        agreements=[
            _agreement("b-2", "carrier-x"),
            _agreement("a-1", "carrier-x", publishers=["*"]),
            _agreement("c-3", "carrier-y", event_types=["LocationAvailability"]),
            _agreement("d-4", "carrier-z", valid_until=T0 + timedelta(days=1)),
        ],
        consents=[_consent("k-1")],
    )


def test_candidate_subscribers_hold_any_agreement_for_the_type_sorted() -> None:
    state = _state()
    assert state.candidate_subscribers("StoreStatusChanged") == ["carrier-x", "carrier-z"]
    assert state.candidate_subscribers("LocationAvailability") == ["carrier-y"]
    assert state.candidate_subscribers("Unknown") == []


def test_agreements_for_filters_by_publisher_and_type_sorted_by_id() -> None:
    state = _state()
    found = state.agreements_for("shop-a", "carrier-x", "StoreStatusChanged")
    assert [agreement.agreement_id for agreement in found] == ["a-1", "b-2"]
    found = state.agreements_for("shop-b", "carrier-x", "StoreStatusChanged")
    assert [agreement.agreement_id for agreement in found] == ["a-1"]
    assert state.agreements_for("shop-a", "carrier-x", "LocationAvailability") == []


def test_the_highest_agreement_version_wins_whatever_the_order() -> None:
    v1, v2 = _agreement("a-1", "carrier-x"), _agreement("a-1", "carrier-x", version=2)
    assert GovernanceState(agreements=[v2, v1]).agreements["a-1"] == v2
    assert GovernanceState(agreements=[v1, v2]).agreements["a-1"] == v2
    state = GovernanceState(agreements=[v2])
    assert state.with_agreement(v1) is state
    assert state.with_agreement(v2) is state


def test_a_new_agreement_version_can_move_it_to_another_subscriber() -> None:
    state = GovernanceState(agreements=[_agreement("a-1", "carrier-x")])
    moved = state.with_agreement(_agreement("a-1", "carrier-y", version=2))
    assert moved.candidate_subscribers("StoreStatusChanged") == ["carrier-y"]
    assert state.candidate_subscribers("StoreStatusChanged") == ["carrier-x"]


def test_every_update_changes_the_version_and_leaves_the_old_snapshot_alone() -> None:
    state = _state()
    updates = [
        state.with_partner(_partner("shop-a", enabled=False)),
        state.without_partner("carrier-y"),
        state.with_agreement(_agreement("a-1", "carrier-x", version=2)),
        state.with_agreement(_agreement("e-5", "carrier-q")),
        state.without_agreement("b-2"),
        state.with_consent(_consent("k-1", withdrawn_at=T0 + timedelta(hours=1))),
        state.with_consent(_consent("k-2")),
        state.without_consent("k-1"),
    ]
    versions = {state.version, *(updated.version for updated in updates)}
    assert len(versions) == len(updates) + 1
    assert state.partner("shop-a") == _partner("shop-a")
    assert "b-2" in state.agreements
    assert "k-1" in state.consents


def test_no_op_updates_return_the_same_snapshot() -> None:
    state = _state()
    assert state.with_partner(_partner("shop-a")) is state
    assert state.without_partner("nobody") is state
    assert state.without_agreement("nothing") is state
    assert state.with_consent(_consent("k-1")) is state
    assert state.without_consent("k-9") is state


def test_policy_version_ignores_consents() -> None:
    state = _state()
    with_consent = state.with_consent(_consent("k-2"))
    assert with_consent.version != state.version
    assert with_consent.policy_version == state.policy_version
    with_partner = state.with_partner(_partner("shop-b"))
    assert with_partner.policy_version != state.policy_version


def test_equal_contents_give_equal_versions() -> None:
    assert _state().version == _state().version
    assert GovernanceState().version == GovernanceState().version
    assert _state().version != GovernanceState().version


def test_lookups_of_partners_and_consents() -> None:
    state = _state()
    assert state.partner("carrier-x") == _partner("carrier-x")
    assert state.partner("nobody") is None
    assert set(state.partners) == {"shop-a", "carrier-x", "carrier-y"}
    assert [consent.consent_id for consent in state.consents] == ["k-1"]
