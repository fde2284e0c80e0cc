"""From audit messages to health observations.

:func:`ecoshare.audit.decode_audit_block` yields one record per (event, subscriber), so
an accepted event that had no candidate subscriber yields nothing there, yet it is still
a contribution and a report for freshness and coverage. This module reads the block's
event rows for :class:`~ecoshare.health.model.AcceptedEvent` (once per event, with or
without subscribers) and takes the decisions and refusals from ``decode_audit_block``,
so the decision format is interpreted in one place only.
"""

from __future__ import annotations

import json

from ecoshare.audit import AuditFormatError, decode_audit_block
from ecoshare.health.model import AcceptedEvent, HealthObservation

__all__ = ["audit_observations"]


def audit_observations(value: bytes | None) -> list[HealthObservation]:
    """Every observation in one audit message: the accepted events of the block, then
    its decisions and refusals. A position marker (empty value) holds none.

    Raises :class:`~ecoshare.audit.AuditFormatError` when ``value`` is not an audit block.
    """
    if not value:
        return []
    observations: list[HealthObservation] = list(decode_audit_block(value))
    try:
        block = json.loads(value)
        event_type = str(block["event_type"])
        decided_at_ms = int(block["at_ms"])
        accepted = [
            AcceptedEvent(
                event_id=str(row[1]),
                event_type=event_type,
                publisher_id=str(row[2]),
                location_id=str(row[3]),
                published_ms=int(row[4]),
                decided_at_ms=decided_at_ms,
            )
            for row in block["events"]
        ]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise AuditFormatError(f"not an audit block: {exc}") from exc
    return [*accepted, *observations]
