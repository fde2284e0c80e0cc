"""What the audit trail says: decisions per event, and who receives whose data.

:class:`AuditIndex` is a fold of the API's follower of the audit topic
(:class:`~ecoshare.adapters.kafka.follower.TopicFollower`) and keeps

- the decisions of the most recent events by event id (bounded; older look-ups fall
  back to a scan of the topic), and
- per (publisher, subscriber, event type), counts of delivered, withheld (by reason)
  and quarantined events, the fields delivered and the agreement versions used. These
  keys are bounded by partners and event types, never by traffic.

An index whose oldest events were evicted answers older look-ups with
:func:`~ecoshare.adapters.kafka.audit_reading.scan_audit`.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ecoshare.adapters.kafka.audit_reading import AuditRecord, audit_records, scan_audit
from ecoshare.adapters.kafka.follower import TopicFollower
from ecoshare.codec.audit_blocks import QuarantineRecord

UNKNOWN_PUBLISHER = "unknown"


@dataclass
class FlowStats:
    """What one publisher's events of one type did for one subscriber."""

    delivered: int = 0
    withheld: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    fields_delivered: set[str] = field(default_factory=set)
    fields_transformed: dict[str, str] = field(default_factory=dict)
    agreements: set[str] = field(default_factory=set)
    personal_fields_without_consent: int = 0
    last_delivered_ms: int | None = None
    last_decided_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "withheld": dict(sorted(self.withheld.items())),
            "withheld_total": sum(self.withheld.values()),
            "quarantined": self.quarantined,
            "fields_delivered": sorted(self.fields_delivered),
            "fields_transformed": dict(sorted(self.fields_transformed.items())),
            "agreements": sorted(self.agreements),
            "deliveries_without_personal_fields": self.personal_fields_without_consent,
            "last_delivered_ms": self.last_delivered_ms,
            "last_decided_ms": self.last_decided_ms,
        }


FlowKey = tuple[str, str, str]  # (publisher, subscriber, event type)


class AuditIndex:
    """A fold of the audit topic's follower; see the module docstring.

    Registers itself with ``follower``, which must not be started yet.
    """

    def __init__(
        self,
        follower: TopicFollower,
        bootstrap_servers: str,
        topic: str,
        *,
        max_events: int = 50_000,
    ) -> None:
        self._follower = follower
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._max_events = max_events
        self._by_event: OrderedDict[str, list[AuditRecord]] = OrderedDict()
        self._flows: dict[FlowKey, FlowStats] = {}
        self._published: Counter[tuple[str, str]] = Counter()
        self._evicted = False
        self._lock = threading.Lock()
        follower.add_fold(self)

    def apply(self, message: Any) -> None:
        """Index one audit message (the follower calls this, in partition order)."""
        where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        records = audit_records(message.value(), where)
        with self._lock:
            self._index(records)

    def _index(self, records: list[AuditRecord]) -> None:
        seen_events: set[tuple[str, int]] = set()
        for record in records:
            publisher = record.publisher_id or UNKNOWN_PUBLISHER
            if (record.source, record.offset) not in seen_events:
                seen_events.add((record.source, record.offset))
                self._published[(publisher, record.event_type)] += 1
            if record.event_id:
                entries = self._by_event.get(record.event_id)
                if entries is None:
                    entries = self._by_event[record.event_id] = []
                    if len(self._by_event) > self._max_events:
                        self._by_event.popitem(last=False)
                        self._evicted = True
                entries.append(record)
            if isinstance(record, QuarantineRecord):
                for subscriber in record.candidate_subscribers:
                    self._flow(publisher, subscriber, record.event_type).quarantined += 1
                continue
            stats = self._flow(publisher, record.subscriber_id, record.event_type)
            stats.last_decided_ms = record.decided_at_ms
            if record.outcome == "delivered":
                stats.delivered += 1
                stats.fields_delivered.update(record.fields_delivered)
                stats.fields_transformed.update(record.fields_transformed)
                stats.last_delivered_ms = record.decided_at_ms
                if record.personal_fields_without_consent:
                    stats.personal_fields_without_consent += 1
            else:
                stats.withheld[record.reason or "unknown"] += 1
            if record.agreement_id is not None:
                stats.agreements.add(f"{record.agreement_id}@v{record.agreement_version}")

    def _flow(self, publisher: str, subscriber: str, event_type: str) -> FlowStats:
        key = (publisher, subscriber, event_type)
        stats = self._flows.get(key)
        if stats is None:
            stats = self._flows[key] = FlowStats()
        return stats

    def catch_up(self, timeout_seconds: float = 5.0) -> bool:
        """Wait until the index has read what the broker holds now; False on timeout."""
        return self._follower.catch_up(timeout_seconds)

    def decisions(self, event_id: str) -> list[dict[str, Any]]:
        """Every decision recorded for ``event_id`` (empty when there is none)."""
        self.catch_up()
        with self._lock:
            found = [record.to_json() for record in self._by_event.get(event_id, ())]
            evicted = self._evicted
        if found or not evicted:
            return found
        return [
            record.to_json()
            for record in scan_audit(self._bootstrap_servers, self._topic)
            if record.event_id == event_id
        ]

    def flows(self) -> dict[FlowKey, dict[str, Any]]:
        """Counts per (publisher, subscriber, event type), as JSON objects."""
        with self._lock:
            return {key: stats.to_json() for key, stats in self._flows.items()}

    def published(self) -> dict[tuple[str, str], int]:
        """Events governed per (publisher, event type)."""
        with self._lock:
            return dict(self._published)
