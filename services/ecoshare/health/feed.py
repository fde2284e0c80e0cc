"""From audit messages to health observations.

The health monitor reads every decision the platform makes, inside the API process, so
reading must be cheap. :func:`~ecoshare.codec.audit_blocks.decode_audit_block` builds
one :class:`~ecoshare.codec.audit_blocks.DecisionRecord` per (event, subscriber), which
is right for ``ecoshare audit`` but is most of the cost here, and it yields nothing for
an accepted event that had no candidate subscriber, which is still a contribution and a
report for freshness and coverage. :func:`audit_observations` therefore parses the
block once (with :func:`~ecoshare.codec.audit_blocks.parse_audit_block`, the one
decoder) and returns:

- one :class:`~ecoshare.health.observations.AcceptedEvent` per event row, with or without
  subscribers;
- one :class:`~ecoshare.health.observations.DecisionTally` per decision template used: the
  number of (event, subscriber) decisions of the block that share subscriber, outcome,
  reason and agreement (a block's decisions share one decision time);
- one :class:`~ecoshare.codec.audit_blocks.QuarantineRecord` per refused message.

The layout is the one documented in :mod:`ecoshare.codec.audit_blocks`;
``tests/unit/test_health_feed.py`` checks, over generated blocks, that the tallies add
up to exactly what ``decode_audit_block`` yields.
"""

from __future__ import annotations

from collections import Counter

from ecoshare.codec.audit_blocks import parse_audit_block
from ecoshare.health.observations import AcceptedEvent, DecisionTally, HealthObservation

__all__ = ["audit_observations"]


def audit_observations(value: bytes | None) -> list[HealthObservation]:
    """Every observation in one audit message: accepted events, decision tallies and
    refusals. A position marker (empty value) holds none.

    Raises :class:`~ecoshare.codec.audit_blocks.AuditFormatError` when ``value`` is not
    an audit block.
    """
    if not value:
        return []
    block = parse_audit_block(value)
    observations: list[HealthObservation] = [
        AcceptedEvent(
            event_id=row.event_id,
            event_type=block.event_type,
            publisher_id=row.publisher_id,
            location_id=row.location_id,
            published_ms=row.published_ms,
            decided_at_ms=block.at_ms,
        )
        for row in block.event_rows()
    ]
    used = Counter(entry[0] for row in block.events for entry in row[5:])
    for index, count in sorted(used.items()):
        template = block.templates[index]
        observations.append(
            DecisionTally(
                event_type=block.event_type,
                subscriber_id=str(template["subscriber"]),
                outcome=str(template["outcome"]),
                reason=template.get("reason"),
                agreement_id=template.get("agreement_id"),
                decided_at_ms=block.at_ms,
                decisions=count,
            )
        )
    observations.extend(block.quarantine_records())
    return observations
