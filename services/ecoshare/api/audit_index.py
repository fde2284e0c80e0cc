"""What the audit trail says: decisions per event, and who receives whose data.

:class:`AuditIndex` follows the audit topic in a daemon thread and keeps

- the decisions of the most recent events by event id (bounded; older look-ups fall
  back to a scan of the topic), and
- per (publisher, subscriber, event type), counts of delivered, withheld (by reason)
  and quarantined events, the fields delivered and the agreement versions used. These
  keys are bounded by partners and event types, never by traffic.

:func:`scan_audit` reads the whole topic once, for the CLI.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from ecoshare.api.compacted import CompactedTopicError, topic_partitions
from ecoshare.codec.audit_blocks import (
    AuditFormatError,
    DecisionRecord,
    QuarantineRecord,
    decode_audit_block,
)

log = logging.getLogger(__name__)

AuditRecord = DecisionRecord | QuarantineRecord
UNKNOWN_PUBLISHER = "unknown"


def _audit_consumer(bootstrap_servers: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"ecoshare-audit-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "log_level": 3,
        }
    )


def _records(value: bytes | None, where: str) -> list[AuditRecord]:
    try:
        return list(decode_audit_block(value))
    except AuditFormatError as exc:
        log.warning("audit message %s skipped: %s", where, exc)
        return []


def scan_audit(
    bootstrap_servers: str, topic: str, *, timeout_seconds: float = 60.0
) -> Iterator[AuditRecord]:
    """Every decision on the audit topic, each partition read to its end."""
    consumer = _audit_consumer(bootstrap_servers)
    deadline = time.monotonic() + timeout_seconds
    try:
        pending = set(topic_partitions(consumer, [topic], timeout_seconds))
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in pending])
        while pending:
            if time.monotonic() > deadline:
                raise CompactedTopicError(f"{topic} not read to its end in {timeout_seconds:.0f}s")
            for message in consumer.consume(num_messages=500, timeout=0.2):
                position = (str(message.topic()), int(message.partition() or 0))
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(position)
                        continue
                    raise CompactedTopicError(f"reading {position}: {error}")
                if position in pending:
                    yield from _records(message.value(), f"{position}@{message.offset()}")
    except KafkaException as exc:
        raise CompactedTopicError(f"could not read {topic}: {exc}") from exc
    finally:
        consumer.close()


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
    """Follows the audit topic; see the module docstring."""

    def __init__(self, bootstrap_servers: str, topic: str, *, max_events: int = 50_000) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._max_events = max_events
        self._by_event: OrderedDict[str, list[AuditRecord]] = OrderedDict()
        self._flows: dict[FlowKey, FlowStats] = {}
        self._published: Counter[tuple[str, str]] = Counter()
        self._evicted = False
        self._positions: dict[tuple[str, int], int] = {}
        self._at_end: dict[tuple[str, int], bool] = {}
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watermarks: Consumer | None = None
        self._watermark_lock = threading.Lock()
        self._listeners: list[Callable[[AuditRecord], None]] = []

    def add_listener(self, listener: Callable[[AuditRecord], None]) -> None:
        self._listeners.append(listener)

    def start(self) -> AuditIndex:
        consumer = _audit_consumer(self._bootstrap_servers)
        partitions = topic_partitions(consumer, [self._topic], 15.0)
        for position in partitions:
            self._positions[position] = 0
            self._at_end[position] = False
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
        self._watermarks = _audit_consumer(self._bootstrap_servers)
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name="audit-index", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._watermarks is not None:
            with self._watermark_lock, contextlib.suppress(KafkaException, RuntimeError):
                self._watermarks.close()
            self._watermarks = None

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=200, timeout=0.2)
                if not messages:
                    continue
                decoded: list[AuditRecord] = []
                with self._condition:
                    for message in messages:
                        position = (str(message.topic()), int(message.partition() or 0))
                        error = message.error()
                        if error is not None:
                            if error.code() == KafkaError._PARTITION_EOF:
                                self._at_end[position] = True
                            else:
                                log.warning("audit index: %s", error)
                            continue
                        self._at_end[position] = False
                        self._positions[position] = int(message.offset() or 0) + 1
                        records = _records(message.value(), f"{position}@{message.offset()}")
                        self._index(records)
                        decoded.extend(records)
                    self._condition.notify_all()
                for record in decoded:
                    for listener in self._listeners:
                        try:
                            listener(record)
                        except Exception:
                            log.exception("audit listener failed")
        except KafkaException as exc:
            log.error("audit index stopped: %s", exc)
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()

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
        targets: dict[tuple[str, int], int] = {}
        with self._watermark_lock:
            if self._watermarks is None:
                return False
            for topic, partition in list(self._positions):
                try:
                    _low, high = self._watermarks.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=timeout_seconds, cached=False
                    )
                except KafkaException:
                    return False
                targets[(topic, partition)] = int(high)
        deadline = time.monotonic() + timeout_seconds
        with self._condition:
            while not all(
                self._positions.get(tp, 0) >= end and self._at_end.get(tp, False)
                for tp, end in targets.items()
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, 0.1))
        return True

    def decisions(self, event_id: str) -> list[dict[str, Any]]:
        """Every decision recorded for ``event_id`` (empty when there is none)."""
        self.catch_up()
        with self._condition:
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
        with self._condition:
            return {key: stats.to_json() for key, stats in self._flows.items()}

    def published(self) -> dict[tuple[str, str], int]:
        """Events governed per (publisher, event type)."""
        with self._condition:
            return dict(self._published)
