"""What the health model accumulates: accepted events, decisions, refusals."""

from __future__ import annotations

from dataclasses import dataclass

from ecoshare.codec.audit_blocks import DecisionRecord, QuarantineRecord

__all__ = ["AcceptedEvent", "DecisionTally", "HealthObservation"]


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """One event the platform accepted (validated, not a duplicate), once per event.

    Times are epoch milliseconds: ``published_ms`` as the publisher stamped it,
    ``decided_at_ms`` when the platform governed it.
    """

    event_id: str
    event_type: str
    publisher_id: str
    location_id: str
    published_ms: int
    decided_at_ms: int

    @property
    def reported_ms(self) -> int:
        """When the event counts as reported: ``min(published_ms, decided_at_ms)``."""
        return min(self.published_ms, self.decided_at_ms)


@dataclass(frozen=True, slots=True)
class DecisionTally:
    """``decisions`` (event, subscriber) decisions taken together at ``decided_at_ms``
    that share subscriber, outcome, reason and agreement: the compact form of as many
    :class:`~ecoshare.codec.audit_blocks.DecisionRecord` values, as one audit block holds them."""

    event_type: str
    subscriber_id: str
    outcome: str  # "delivered" | "withheld"
    reason: str | None
    agreement_id: str | None
    decided_at_ms: int
    decisions: int


HealthObservation = AcceptedEvent | DecisionTally | DecisionRecord | QuarantineRecord
"""What the model accumulates: an accepted event, decisions, or a refusal."""
