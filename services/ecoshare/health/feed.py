"""From audit messages to health observations.

The health monitor reads every decision the platform makes, inside the API process, so
reading must be cheap. :func:`ecoshare.codec.audit_blocks.decode_audit_block` builds
one :class:`~ecoshare.codec.audit_blocks.DecisionRecord` per (event, subscriber), which
is right for ``ecoshare audit`` but is most of the cost here, and it yields nothing for an accepted
event that had no candidate subscriber, which is still a contribution and a report for
freshness and coverage. :func:`audit_observations` therefore reads the block once and
returns:

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

import json
from collections import Counter

from ecoshare.codec.audit_blocks import AuditFormatError, QuarantineRecord
from ecoshare.health.observations import AcceptedEvent, DecisionTally, HealthObservation

__all__ = ["audit_observations"]


def audit_observations(value: bytes | None) -> list[HealthObservation]:
    """Every observation in one audit message: accepted events, decision tallies and
    refusals. A position marker (empty value) holds none.

    Raises :class:`~ecoshare.codec.audit_blocks.AuditFormatError` when ``value`` is not an
    audit block.
    """
    if not value:
        return []
    try:
        block = json.loads(value)
        event_type = str(block["event_type"])
        source = str(block["source"])
        at_ms = int(block["at_ms"])
        templates = block["templates"]
        observations: list[HealthObservation] = []
        used: Counter[int] = Counter()
        for row in block["events"]:
            observations.append(
                AcceptedEvent(
                    event_id=str(row[1]),
                    event_type=event_type,
                    publisher_id=str(row[2]),
                    location_id=str(row[3]),
                    published_ms=int(row[4]),
                    decided_at_ms=at_ms,
                )
            )
            for entry in row[5:]:
                used[entry[0]] += 1
        for index, count in sorted(used.items()):
            template = templates[index]
            observations.append(
                DecisionTally(
                    event_type=event_type,
                    subscriber_id=str(template["subscriber"]),
                    outcome=str(template["outcome"]),
                    reason=template.get("reason"),
                    agreement_id=template.get("agreement_id"),
                    decided_at_ms=at_ms,
                    decisions=count,
                )
            )
        candidates = tuple(block.get("candidates", ()))
        for row in block.get("quarantined", ()):
            offset, event_id, reason, detail = row[:4]
            observations.append(
                QuarantineRecord(
                    event_id=event_id,
                    event_type=event_type,
                    publisher_id=row[4] if len(row) > 4 else None,
                    reason=reason,
                    detail=detail,
                    source=source,
                    offset=int(offset),
                    decided_at_ms=at_ms,
                    candidate_subscribers=candidates,
                )
            )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise AuditFormatError(f"not an audit block: {exc}") from exc
    return observations
