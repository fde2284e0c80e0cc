"""`publish --wait` reports the decisions on the copies it wrote, not on earlier ones."""

from __future__ import annotations

from typing import Any

from ecoshare.cli.events import _outcome_of
from ecoshare.codec.audit_blocks import DecisionRecord, QuarantineRecord

EVENT_ID = "00000000-0000-4000-8000-000000000001"
TOPIC = "ecoshare.ingress.StoreStatusChanged"


def _delivered(offset: int) -> dict[str, Any]:
    return DecisionRecord(
        event_id=EVENT_ID,
        event_type="StoreStatusChanged",
        publisher_id="postnl",
        location_id="sp-1",
        published_ms=1,
        subscriber_id="carrier",
        outcome="delivered",
        reason=None,
        agreement_id="agr-1",
        agreement_version=1,
        consent_ids=(),
        fields_delivered=("event_id",),
        fields_dropped=(),
        fields_transformed={},
        personal_fields_without_consent=(),
        source=f"{TOPIC}:2",
        offset=offset,
        decided_at_ms=2,
        state_version="1",
    ).to_json()


def _duplicate(offset: int) -> dict[str, Any]:
    return QuarantineRecord(
        event_id=EVENT_ID,
        event_type="StoreStatusChanged",
        publisher_id="postnl",
        reason="duplicate_event_id",
        detail="already processed",
        source=f"{TOPIC}:2",
        offset=offset,
        decided_at_ms=3,
    ).to_json()


def test_an_earlier_sends_delivery_is_not_this_sends_outcome() -> None:
    resent_at = {f"{TOPIC}:2@7"}
    # The first send (offset 3) was delivered; the resend's quarantine has not landed.
    assert _outcome_of([_delivered(3)], resent_at) is None
    assert _outcome_of([_delivered(3), _duplicate(7)], resent_at) == (
        "quarantined (duplicate_event_id)"
    )
    assert _outcome_of([_delivered(3), _duplicate(7)], {f"{TOPIC}:2@3"}) == ("delivered to carrier")


def test_every_copy_written_needs_a_decision() -> None:
    both = {f"{TOPIC}:2@3", f"{TOPIC}:2@4"}
    assert _outcome_of([_delivered(3)], both) is None
    assert _outcome_of([_delivered(3), _duplicate(4)], both) == "quarantined (duplicate_event_id)"
