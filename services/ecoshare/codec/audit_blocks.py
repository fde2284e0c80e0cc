"""The audit trail: how decisions are written to the audit topic, and read back.

Workers write one *audit block* per ingress partition per batch: a JSON document that
holds every decision of the batch compactly. Decisions that share everything but the
event (same subscriber, outcome, reason, agreement version, field lists) share a
*template*; each event row lists, per candidate subscriber, the template index and the
consent ids used. :func:`decode_audit_block` expands a block into one
:class:`DecisionRecord` per (event, subscriber) and one :class:`QuarantineRecord` per
refused message, which is what ``ecoshare audit`` and the health monitor read.

This module is the one place that knows the layout: :func:`encode_audit_block` writes
an :class:`AuditBlock`, :func:`parse_audit_block` checks and reads one back, and every
reader (the audit index, the health feed, the CLI) goes through the parser.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


@dataclass(frozen=True, slots=True)
class AuditBlock:
    """One audit message: the decisions of one batch on one ingress partition.

    Rows keep their wire shape (lists), because the hot path builds them per event and
    must not pay for objects it only serialises: ``events`` rows are
    ``[offset, event_id, publisher_id, location_id, published_ms, *entries]`` with each
    entry ``[template_index]`` or ``[template_index, [consent_id, ...]]``;
    ``quarantined`` rows are ``[offset, event_id | None, reason, detail, publisher_id]``.
    A block that :func:`parse_audit_block` returns has been checked row by row.
    """

    source: str  # "<ingress topic>:<partition>"
    event_type: str
    state_version: str
    at_ms: int
    candidates: tuple[str, ...]
    templates: list[dict[str, Any]]
    events: list[list[Any]]
    quarantined: list[list[Any]]

    def event_rows(self) -> Iterator[EventRow]:
        """Every admitted event of the block, with its decision entries."""
        for row in self.events:
            yield EventRow(row[0], row[1], row[2], row[3], row[4], row[5:])

    def decisions(self) -> Iterator[DecisionRecord]:
        """One record per (admitted event, candidate subscriber)."""
        templates = self.templates
        for row in self.events:
            offset, event_id, publisher_id, location_id, published_ms = row[:5]
            for entry in row[5:]:
                template = templates[entry[0]]
                yield DecisionRecord(
                    event_id=event_id,
                    event_type=self.event_type,
                    publisher_id=publisher_id,
                    location_id=location_id,
                    published_ms=published_ms,
                    subscriber_id=template["subscriber"],
                    outcome=template["outcome"],
                    reason=template.get("reason"),
                    agreement_id=template.get("agreement_id"),
                    agreement_version=template.get("agreement_version"),
                    consent_ids=tuple(entry[1]) if len(entry) > 1 else (),
                    fields_delivered=tuple(template.get("fields_delivered", ())),
                    fields_dropped=tuple(template.get("fields_dropped", ())),
                    fields_transformed=dict(template.get("fields_transformed", {})),
                    personal_fields_without_consent=tuple(
                        template.get("personal_fields_without_consent", ())
                    ),
                    source=self.source,
                    offset=offset,
                    decided_at_ms=self.at_ms,
                    state_version=self.state_version,
                )

    def quarantine_records(self) -> Iterator[QuarantineRecord]:
        """One record per refused ingress message."""
        for row in self.quarantined:
            yield QuarantineRecord(
                event_id=row[1],
                event_type=self.event_type,
                publisher_id=row[4] if len(row) > 4 else None,
                reason=row[2],
                detail=row[3],
                source=self.source,
                offset=row[0],
                decided_at_ms=self.at_ms,
                candidate_subscribers=self.candidates,
            )


class EventRow(NamedTuple):
    """An admitted event's row; ``entries`` are its decisions, one per candidate."""

    offset: int
    event_id: str
    publisher_id: str
    location_id: str
    published_ms: int
    entries: list[list[Any]]


NativeJson = Callable[[dict[str, Any]], bytes]
"""The compiled core's ``audit_json``: the bytes of compact ``json.dumps``, or TypeError
or ValueError for a value it does not write (then ``json.dumps`` does)."""


def encode_audit_block(block: AuditBlock, native_json: NativeJson | None = None) -> bytes:
    """The audit message of ``block``: compact JSON, the same bytes with either encoder."""
    body = {
        "source": block.source,
        "event_type": block.event_type,
        "state_version": block.state_version,
        "at_ms": block.at_ms,
        "candidates": list(block.candidates),
        "templates": block.templates,
        "events": block.events,
        "quarantined": block.quarantined,
    }
    if native_json is not None:
        try:
            return native_json(body)
        except (TypeError, ValueError):
            pass  # a value only json.dumps knows how to write
    return json.dumps(body, separators=(",", ":")).encode()


def parse_audit_block(value: bytes) -> AuditBlock:
    """The block in an audit message, checked; :class:`AuditFormatError` if it is not one.

    Every row is checked here, so that readers may index rows without guarding.
    """
    try:
        body = json.loads(value)
        if not isinstance(body, dict):
            raise TypeError(f"a JSON object is expected, not {type(body).__name__}")
        block = AuditBlock(
            source=_text(body["source"], "source"),
            event_type=_text(body["event_type"], "event_type"),
            state_version=str(body.get("state_version", "")),
            at_ms=_integer(body["at_ms"], "at_ms"),
            candidates=tuple(_text(name, "candidate") for name in body.get("candidates", ())),
            templates=_list(body["templates"], "templates"),
            events=_list(body["events"], "events"),
            quarantined=_list(body.get("quarantined", []), "quarantined"),
        )
        for template in block.templates:
            if not isinstance(template, dict):
                raise TypeError("a template is not an object")
            _text(template["subscriber"], "template subscriber")
            _text(template["outcome"], "template outcome")
        for row in block.events:
            _check_event_row(row, len(block.templates))
        for row in block.quarantined:
            _check_quarantined_row(row)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise AuditFormatError(f"not an audit block: {exc}") from exc
    return block


def decode_audit_block(value: bytes | None) -> Iterator[DecisionRecord | QuarantineRecord]:
    """Every decision of one audit message (nothing for a position marker)."""
    if not value:
        return
    block = parse_audit_block(value)
    yield from block.decisions()
    yield from block.quarantine_records()


def _check_event_row(row: Any, template_count: int) -> None:
    if not isinstance(row, list) or len(row) < 5:
        raise ValueError(f"an event row needs five columns: {row!r}")
    _integer(row[0], "offset")
    _text(row[1], "event_id")
    _text(row[2], "publisher_id")
    _text(row[3], "location_id")
    _integer(row[4], "published_ms")
    for entry in row[5:]:
        if not isinstance(entry, list) or not 1 <= len(entry) <= 2:
            raise ValueError(f"a decision entry is [template] or [template, consents]: {entry!r}")
        index = _integer(entry[0], "template index")
        if not 0 <= index < template_count:
            raise IndexError(f"template {index} of {template_count}")
        if len(entry) == 2:
            for consent_id in _list(entry[1], "consent ids"):
                _text(consent_id, "consent id")


def _check_quarantined_row(row: Any) -> None:
    if not isinstance(row, list) or not 4 <= len(row) <= 5:
        raise ValueError(f"a quarantined row has four or five columns: {row!r}")
    _integer(row[0], "offset")
    if row[1] is not None:
        _text(row[1], "event_id")
    _text(row[2], "reason")
    _text(row[3], "detail")
    if len(row) > 4 and row[4] is not None:
        _text(row[4], "publisher_id")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {value!r}")
    return value


def _integer(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{what} must be a list, not {type(value).__name__}")
    return value
