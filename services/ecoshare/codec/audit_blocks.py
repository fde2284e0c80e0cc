"""The audit trail: how decisions are written to the audit topic, and read back.

Workers write one *audit block* per ingress partition per batch: a JSON document that
holds every decision of the batch compactly. Decisions that share everything but the
event (same subscriber, outcome, reason, agreement version, field lists) share a
*template*; each event row lists, per candidate subscriber, the template index and the
consent ids used. :func:`decode_audit_block` expands a block into one
:class:`DecisionRecord` per (event, subscriber) and one :class:`QuarantineRecord` per
refused message, which is what ``ecoshare audit`` and the health monitor read.

Block layout (``ecoshare-marker`` messages, with an empty value, are position markers
and carry no decisions)::

    {"source": "<ingress topic>:<partition>", "event_type": str, "state_version": str,
     "at_ms": int, "candidates": [subscriber, ...],
     "templates": [{"subscriber", "outcome", "reason", "agreement_id",
                    "agreement_version", "fields_delivered", "fields_dropped",
                    "fields_transformed", "personal_fields_without_consent"}, ...],
     "events": [[offset, event_id, publisher_id, location_id, published_ms,
                 [template_index, [consent_id, ...]?], ...], ...],
     "quarantined": [[offset, event_id | null, reason, detail, publisher_id | null]]}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ecoshare.errors import EcoshareError


class AuditFormatError(EcoshareError):
    """An audit message is not a valid audit block."""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What happened to one event for one subscriber."""

    event_id: str
    event_type: str
    publisher_id: str
    location_id: str
    published_ms: int
    subscriber_id: str
    outcome: str  # "delivered" | "withheld"
    reason: str | None
    agreement_id: str | None
    agreement_version: int | None
    consent_ids: tuple[str, ...]
    fields_delivered: tuple[str, ...]
    fields_dropped: tuple[str, ...]
    fields_transformed: dict[str, str]
    personal_fields_without_consent: tuple[str, ...]
    source: str
    offset: int
    decided_at_ms: int
    state_version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "publisher_id": self.publisher_id,
            "location_id": self.location_id,
            "subscriber_id": self.subscriber_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "agreement_id": self.agreement_id,
            "agreement_version": self.agreement_version,
            "consent_ids": list(self.consent_ids),
            "fields_delivered": list(self.fields_delivered),
            "fields_dropped": list(self.fields_dropped),
            "fields_transformed": self.fields_transformed,
            "personal_fields_without_consent": list(self.personal_fields_without_consent),
            "source": f"{self.source}@{self.offset}",
            "decided_at_ms": self.decided_at_ms,
            "state_version": self.state_version,
        }


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A refused ingress message; counted as quarantined for every candidate subscriber."""

    event_id: str | None
    event_type: str
    publisher_id: str | None
    reason: str
    detail: str
    source: str
    offset: int
    decided_at_ms: int
    candidate_subscribers: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "publisher_id": self.publisher_id,
            "outcome": "quarantined",
            "reason": self.reason,
            "detail": self.detail,
            "source": f"{self.source}@{self.offset}",
            "decided_at_ms": self.decided_at_ms,
            "candidate_subscribers": list(self.candidate_subscribers),
        }


def decode_audit_block(value: bytes | None) -> Iterator[DecisionRecord | QuarantineRecord]:
    """Every decision of one audit message (nothing for a position marker)."""
    if not value:
        return
    try:
        block = json.loads(value)
        templates = block["templates"]
        common = (block["event_type"], block["source"], int(block["at_ms"]))
        state_version = str(block.get("state_version", ""))
        event_type, source, at_ms = common
        for row in block["events"]:
            offset, event_id, publisher_id, location_id, published_ms = row[:5]
            for entry in row[5:]:
                template = templates[entry[0]]
                consent_ids = tuple(entry[1]) if len(entry) > 1 else ()
                yield DecisionRecord(
                    event_id=event_id,
                    event_type=event_type,
                    publisher_id=publisher_id,
                    location_id=location_id,
                    published_ms=int(published_ms),
                    subscriber_id=template["subscriber"],
                    outcome=template["outcome"],
                    reason=template.get("reason"),
                    agreement_id=template.get("agreement_id"),
                    agreement_version=template.get("agreement_version"),
                    consent_ids=consent_ids,
                    fields_delivered=tuple(template.get("fields_delivered", ())),
                    fields_dropped=tuple(template.get("fields_dropped", ())),
                    fields_transformed=dict(template.get("fields_transformed", {})),
                    personal_fields_without_consent=tuple(
                        template.get("personal_fields_without_consent", ())
                    ),
                    source=source,
                    offset=int(offset),
                    decided_at_ms=at_ms,
                    state_version=state_version,
                )
        candidates = tuple(block.get("candidates", ()))
        for row in block.get("quarantined", ()):
            offset, event_id, reason, detail = row[:4]
            yield QuarantineRecord(
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
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise AuditFormatError(f"not an audit block: {exc}") from exc
