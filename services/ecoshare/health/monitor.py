"""The health monitor: follows the audit trail and the control plane, keeps the gauges set.

Why a thread with a confluent-kafka consumer rather than a Faust app with timers and
tables: the monitor must read the audit topic *from its beginning on every start*, with
no consumer group and no commits (it is a read-only observer, and any number of API
processes may run one), and it must know when it has caught up, which partition EOF
tells reliably (ListOffsets under-reports on the embedded broker). Faust always joins a
group, commits offsets and keeps tables in changelog topics of its own, none of which
the monitor wants; its timers would also need an event loop inside the API process.
The model's state is rebuilt from the audit trail on start, so nothing needs a changelog.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from ecoshare.adapters.metrics import HealthMetrics
from ecoshare.codec.audit_blocks import AuditFormatError
from ecoshare.config.topics import TopicNames
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner
from ecoshare.governance.control_plane import ControlRecordError, decode_key, decode_value
from ecoshare.health.feed import audit_observations
from ecoshare.health.model import DEFAULT_WINDOW, EcosystemHealth, HealthObservation

__all__ = ["HealthMonitor"]

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)

_BATCH_MESSAGES = 1000
_POLL_SECONDS = 0.2
_DISCOVERY_RETRY_SECONDS = 0.5


class _ControlRecords(Generic[ModelT]):
    """The valid model per key of one control topic, following its records in order.

    An invalid record leaves the previous valid one in force (as the governance workers
    do) and is counted; a deletion removes the key.
    """

    def __init__(self, model: type[ModelT], version: Callable[[ModelT], int] | None = None):
        self._model = model
        self._version = version
        self.valid: dict[str, ModelT] = {}
        self.invalid = 0
        self.changed = False

    def apply(self, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self.changed |= self.valid.pop(key, None) is not None
            return
        try:
            parsed = self._model.model_validate(value)
        except ValidationError as exc:
            self.invalid += 1
            log.error("invalid %s record %r ignored: %s", self._model.__name__, key, exc)
            return
        current = self.valid.get(key)
        version = self._version
        if current is not None and version is not None and version(current) > version(parsed):
            return
        self.valid[key] = parsed
        self.changed = True


class HealthMonitor:
    """Continuously computed ecosystem health, exported as :class:`HealthMetrics`.

    A daemon thread reads every partition of the audit topic and of the agreements and
    partners control topics from the beginning (``assign()``, no group, nothing
    committed), feeds :class:`~ecoshare.health.model.EcosystemHealth`, and once every
    partition has been read to its end sets the gauges on ``registry`` every
    ``refresh_seconds``. It waits for the topics to exist, so it can start before the
    platform has created them. Breaches are only counted once caught up, so replaying
    old history never counts one.

    ``freshness_sla`` overrides the default SLA of the event types it names. ``clock``
    returns Unix seconds; it exists for tests. :meth:`report` is thread-safe.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        names: TopicNames,
        registry: CollectorRegistry,
        *,
        freshness_sla: Mapping[str, timedelta] | None = None,
        refresh_seconds: float = 5.0,
        window: timedelta = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if refresh_seconds <= 0:
            raise ValueError("refresh_seconds must be positive")
        self._bootstrap_servers = bootstrap_servers
        self._names = names
        self._metrics = HealthMetrics(registry)
        self._model = EcosystemHealth(freshness_sla=freshness_sla, window=window)
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._agreements = _ControlRecords(Agreement, lambda agreement: agreement.version)
        self._partners = _ControlRecords(Partner)
        self._audit_messages = 0
        self._undecodable_audit_messages = 0
        self._pending_partitions: set[tuple[str, int]] | None = None
        self._exported_at: datetime | None = None
        self._last_error: str | None = None

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start following the topics in a daemon thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("the health monitor was already started")
        self._thread = threading.Thread(
            target=self._run, name="ecoshare-health-monitor", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop the thread and close the consumer (waits up to ``timeout_seconds``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def __enter__(self) -> HealthMonitor:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def caught_up(self) -> bool:
        """True once every partition followed has been read to its end at least once."""
        return self._caught_up.is_set()

    def wait_until_caught_up(self, timeout_seconds: float) -> bool:
        """Block until :attr:`caught_up` or ``timeout_seconds`` pass; return :attr:`caught_up`."""
        return self._caught_up.wait(timeout_seconds)

    # -- reading -------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The health report now (see :meth:`EcosystemHealth.report`) plus ``status``:
        whether the history has been read to its end, messages read, records refused
        and the last error. Thread-safe; before catching up the figures are partial.
        """
        with self._lock:
            now = self._now()
            body = self._model.report(now, count_breaches=self._caught_up.is_set())
            pending = self._pending_partitions
            body["status"] = {
                "caught_up": self._caught_up.is_set(),
                "following": pending is not None,
                "partitions_to_catch_up": None if pending is None else len(pending),
                "audit_messages": self._audit_messages,
                "undecodable_audit_messages": self._undecodable_audit_messages,
                "invalid_control_records": self._agreements.invalid + self._partners.invalid,
                "metrics_exported_at": (
                    None if self._exported_at is None else self._exported_at.isoformat()
                ),
                "last_error": self._last_error,
            }
        return body

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap_servers,
                # librdkafka requires a group id even with assign(); it is never joined.
                "group.id": f"ecoshare-health-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
                "log_level": 3,
            }
        )
        try:
            partitions = self._discover(consumer)
            if partitions is None:
                return
            consumer.assign([TopicPartition(*place, OFFSET_BEGINNING) for place in partitions])
            with self._lock:
                self._pending_partitions = set(partitions)
            next_export = time.monotonic()
            while not self._stopping.is_set():
                try:
                    messages = consumer.consume(num_messages=_BATCH_MESSAGES, timeout=_POLL_SECONDS)
                except KafkaException as exc:
                    self._note_error(f"consume failed: {exc}")
                    continue
                if messages:
                    self._apply(messages)
                if self._caught_up.is_set() and time.monotonic() >= next_export:
                    with self._lock:
                        self._exported_at = self._now()
                        self._model.export(self._metrics, self._exported_at)
                    next_export = time.monotonic() + self._refresh_seconds
        except Exception as exc:  # a dead monitor must say why, in the log and the report
            log.exception("the health monitor stopped")
            self._note_error(f"stopped: {exc}")
        finally:
            consumer.close()

    def _discover(self, consumer: Consumer) -> list[tuple[str, int]] | None:
        """Every partition of the followed topics, once they all exist (None if stopped)."""
        wanted = (self._names.audit, self._names.agreements, self._names.partners)
        while not self._stopping.is_set():
            try:
                # Listing all topics, rather than asking for the wanted ones by name,
                # never auto-creates a topic the platform has not created yet.
                topics = consumer.list_topics(timeout=5.0).topics
            except KafkaException as exc:
                self._note_error(f"metadata request failed: {exc}")
                topics = {}
            found: list[tuple[str, int]] = []
            for topic in wanted:
                metadata = topics.get(topic)
                if metadata is None or metadata.error is not None or not metadata.partitions:
                    break
                found.extend((topic, partition) for partition in sorted(metadata.partitions))
            else:
                return found
            self._stopping.wait(_DISCOVERY_RETRY_SECONDS)
        return None

    def _apply(self, messages: list[Any]) -> None:
        """Feed one consumed batch to the model, in order.

        Audit blocks are decoded before the lock is taken, so :meth:`report` waits only
        for the model's bookkeeping, not for JSON parsing.
        """
        audit = self._names.audit
        decoded: list[list[HealthObservation] | None] = []
        for message in messages:
            if message.error() is None and message.topic() == audit:
                try:
                    decoded.append(audit_observations(message.value()))
                except AuditFormatError as exc:
                    log.warning("audit message at %s@%s skipped: %s", audit, message.offset(), exc)
                    decoded.append(None)
        with self._lock:
            blocks = iter(decoded)
            for message in messages:
                topic = str(message.topic())
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._reached_end((topic, int(message.partition())))
                    else:
                        self._last_error = f"reading {topic}: {error}"
                        log.warning("health monitor: %s", self._last_error)
                elif topic == audit:
                    self._audit_messages += 1
                    observations = next(blocks)
                    if observations is None:
                        self._undecodable_audit_messages += 1
                    else:
                        self._model.record_all(observations)
                else:
                    self._apply_control(topic, message)
            if self._agreements.changed:
                self._model.set_agreements(self._agreements.valid.values())
                self._agreements.changed = False
            if self._partners.changed:
                self._model.set_partners(self._partners.valid.values())
                self._partners.changed = False

    def _apply_control(self, topic: str, message: Any) -> None:
        records = self._agreements if topic == self._names.agreements else self._partners
        try:
            key = decode_key(message.key())
            value = decode_value(message.value())
        except ControlRecordError as exc:
            records.invalid += 1
            log.error("control record at %s@%s ignored: %s", topic, message.offset(), exc)
            return
        records.apply(key, value)

    def _reached_end(self, partition: tuple[str, int]) -> None:
        pending = self._pending_partitions
        if pending is None or self._caught_up.is_set():
            return
        pending.discard(partition)
        if not pending:
            self._caught_up.set()
            log.info("health monitor caught up after %d audit messages", self._audit_messages)

    def _note_error(self, message: str) -> None:
        log.warning("health monitor: %s", message)
        with self._lock:
            self._last_error = message
