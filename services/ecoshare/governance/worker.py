"""A governance worker process: Faust keeps the control plane, confluent-kafka the hot path.

The Faust app (in its own thread) holds partners, agreements and consents as tables
fed by the compacted control topics. The hot path runs in the main thread on a plain
confluent-kafka consumer in the ``ecoshare-governance`` group (so Kafka spreads the
ingress partitions over the workers): it governs batches with the engine and hands
each to the checkpoint ledger (:mod:`ecoshare.governance.ledger`), which produces the
outputs and acknowledges the batch — one Kafka transaction, or checkpoint then commit
where the broker has no transactions. See :mod:`ecoshare.governance.progress` for why a
killed worker neither loses nor repeats a delivery.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from ecoshare.adapters.kafka.admin import TopicSpec, broker_has_transactions, ensure_topics
from ecoshare.adapters.kafka.config import worker_consumer_config, worker_producer_config
from ecoshare.catalog.event_catalog import Catalog
from ecoshare.config.topics import TopicNames, TopicPolicy, value_subject
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.engine import GovernanceEngine
from ecoshare.governance.ledger import (
    CheckpointLedger,
    LedgerSettings,
    OutputsNotAcknowledgedError,
    StepHook,
    Submitted,
    TransactionalLedger,
)
from ecoshare.governance.observer import PartitionStallWatch, WorkerObserver
from ecoshare.governance.pipelined_ledger import PipelinedLedger
from ecoshare.governance.progress import SnapshotPolicy
from ecoshare.governance.recovery import KafkaLogReader, LogReader
from ecoshare.governance.schemas import RegistrySchemaLookup, register_schema

__all__ = ["GovernanceWorker", "OutputsNotAcknowledgedError", "WorkerConfig", "WorkerPorts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap_servers: str
    schema_registry_url: str
    names: TopicNames
    event_types: tuple[str, ...]
    master_secret: bytes
    ingress_partitions: int
    group_id: str = "ecoshare-governance"
    batch_size: int = 2000
    batch_timeout_seconds: float = 0.005
    # Checkpoints mode: see LedgerSettings.audit_checkpoint_interval_ms.
    audit_checkpoint_interval_ms: int = 1000
    max_event_bytes: int = 65536
    dedup_window_ms: int = 86_400_000
    dedup_capacity: int = 500_000
    session_timeout_ms: int = 6000
    engine: str = "auto"
    # Kafka transactions (outputs, checkpoint and offsets commit atomically) where the
    # broker has them; the checkpoint-and-tail recovery of `progress` where it has not.
    transactions: bool = False
    # The broker assigns partitions (KIP-848 consumer protocol, Apache Kafka 4) whatever
    # the exactly-once mode; None: follow `transactions`, or ask the broker on connect.
    broker_assigns: bool | None = None
    # A stable name for this worker's slot (e.g. "worker-0" under `ecoshare up`): with
    # transactions, its transactional id, so a worker restarted in the slot fences its
    # predecessor and aborts what it left open. Group membership does not use it (the
    # KIP-848 consumer protocol has no static membership; see worker_consumer_config).
    # None: a fresh identity per process.
    worker_id: str | None = None
    transaction_timeout_ms: int = 10_000
    topic_policy: TopicPolicy = field(default_factory=TopicPolicy)


# With nothing fetched the worker waits this long for the next records instead of
# turning its loop every few milliseconds.
IDLE_CONSUME_TIMEOUT_SECONDS = 0.1


def client_configs(config: WorkerConfig, identity: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(producer, consumer) configuration of a worker's clients.

    With transactions (Apache Kafka), fencing of a zombie rests on the consumer group
    generation (KIP-447), checked when its offsets join the transaction; a transaction
    left open by a killed worker blocks read_committed readers of its outputs until the
    broker aborts it, so its timeout is short.
    """
    producer = worker_producer_config(
        config.bootstrap_servers,
        transactional_id=identity if config.transactions else None,
        transaction_timeout_ms=config.transaction_timeout_ms,
    )
    consumer = worker_consumer_config(
        config.bootstrap_servers,
        config.group_id,
        session_timeout_ms=config.session_timeout_ms,
        broker_assigns=(
            config.transactions if config.broker_assigns is None else config.broker_assigns
        ),
    )
    return producer, consumer


@dataclass
class WorkerPorts:
    """A worker's I/O: its group consumer, its producer, a reader of partitions, and
    how a delivery topic is made ready (created, its schema registered)."""

    consumer: Any
    producer: Any
    reader: LogReader
    prepare_delivery_topic: Callable[[str, dict[str, Any]], int]


def connect(config: WorkerConfig, registry: SchemaRegistryClient) -> WorkerPorts:
    """The Kafka clients of one worker process."""
    if config.broker_assigns is None and not config.transactions:
        # Checkpoints on Apache Kafka still want the broker's assignor (see
        # worker_consumer_config); the embedded broker has only the classic protocol.
        config = replace(config, broker_assigns=broker_has_transactions(config.bootstrap_servers))
    producer_config, consumer_config = client_configs(
        config, f"{config.group_id}-{config.worker_id or uuid.uuid4().hex}"
    )
    consumer = Consumer(consumer_config)
    created: set[str] = set()

    def prepare_delivery_topic(topic: str, schema: dict[str, Any]) -> int:
        # A new subscriber's delivery topic is the one topic a worker creates.
        if topic not in created:
            ensure_topics(
                config.bootstrap_servers,
                [TopicSpec(topic, config.ingress_partitions)],
                policy=config.topic_policy,
            )
            created.add(topic)
        return register_schema(registry, value_subject(topic), schema)

    return WorkerPorts(
        consumer,
        Producer(producer_config),
        KafkaLogReader(config.bootstrap_servers),
        prepare_delivery_topic,
    )


class GovernanceWorker:
    """One worker's hot loop. ``state_source`` returns the current GovernanceState.

    ``ports`` and ``engine`` default to the real clients and engine; ``snapshots`` to
    the default :class:`SnapshotPolicy`; ``step`` (tests) is called with the name of
    each step between consume and commit.
    """

    def __init__(
        self,
        config: WorkerConfig,
        catalog: Catalog,
        state_source: Callable[[], GovernanceState],
        observer: WorkerObserver | None = None,
        *,
        ports: WorkerPorts | None = None,
        engine: GovernanceEngine | None = None,
        snapshots: SnapshotPolicy | None = None,
        step: StepHook | None = None,
    ) -> None:
        self.config = config
        self._state_source = state_source
        self._observer = observer
        self._stop = threading.Event()
        names = config.names
        self._ingress = {names.ingress(event_type): event_type for event_type in config.event_types}
        registry = None
        if ports is None or engine is None:
            registry = SchemaRegistryClient({"url": config.schema_registry_url})
        if ports is None:
            assert registry is not None
            ports = connect(config, registry)
        self._consumer = ports.consumer
        if engine is None:
            assert registry is not None
            engine = GovernanceEngine(
                schemas=RegistrySchemaLookup(registry, self._ingress),
                classification={
                    event_type: catalog.classification(event_type)
                    for event_type in config.event_types
                },
                master_secret=config.master_secret,
                delivery_topic=names.delivery,
                audit_topic=names.audit,
                quarantine_topic=names.quarantine,
                register_delivery_schema=ports.prepare_delivery_topic,
                max_event_bytes=config.max_event_bytes,
                dedup_window_ms=config.dedup_window_ms,
                dedup_capacity=config.dedup_capacity,
                ingress_partitions=self._ingress_partition_count,
                engine=config.engine,
            )
        self.engine = engine
        ledger_type = TransactionalLedger if config.transactions else PipelinedLedger
        self.ledger: CheckpointLedger = ledger_type(
            LedgerSettings(
                names,
                config.dedup_window_ms,
                config.dedup_capacity,
                snapshots or SnapshotPolicy(),
                config.audit_checkpoint_interval_ms,
            ),
            ports.producer,
            ports.consumer,
            ports.reader,
            step,
        )
        self._step = step or (lambda name: None)
        self._partition_counts: dict[str, int] = {}
        self._assigned: set[tuple[str, int]] = set()
        self._stalls = PartitionStallWatch()
        self.batches = 0
        self.events = 0

    def _ingress_partition_count(self, topic: str) -> int:
        """Partitions of an ingress topic, read once per assignment (where keys belong)."""
        count = self._partition_counts.get(topic)
        if count is None:
            metadata = self._consumer.list_topics(topic, timeout=10)
            count = self._partition_counts[topic] = len(metadata.topics[topic].partitions)
        return count

    # -- partition life cycle --------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._partition_counts.clear()
        self._adopt(partitions)
        consumer.incremental_assign(partitions)
        log.info("assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in partitions])

    def _adopt(self, partitions: list[TopicPartition]) -> None:
        """Rebuild the duplicate windows of ``partitions``, set where each resumes."""
        state = self._state_source()
        now_ms = int(time.time() * 1000)
        names = self.config.names

        def unchecked_outputs(topic: str) -> list[str]:
            # With transactions nothing is written outside a committed checkpoint.
            if self.config.transactions:
                return []
            event_type = self._ingress[topic]
            subscribers = state.candidate_subscribers(event_type)
            return [
                *(names.delivery(subscriber, event_type) for subscriber in subscribers),
                names.audit,
                names.quarantine,
            ]

        read_before = self.ledger.progress_records_read
        recoveries = self.ledger.recover(
            [(tp.topic, tp.partition, unchecked_outputs(tp.topic)) for tp in partitions], now_ms
        )
        for tp in partitions:
            source = (tp.topic, tp.partition)
            recovery = recoveries[source]
            window = self.engine.new_window()
            for at_ms, ids in recovery.window:
                window.add_all(ids, at_ms)
            window.expire(now_ms)
            self.engine.adopt_partition(
                tp.topic, tp.partition, window, recovery.written_after_checkpoint
            )
            tp.offset = recovery.resume_at
            self._assigned.add(source)
            if self._observer is not None:
                self._observer.partition_assigned(tp.topic, tp.partition)
            log.info(
                "recovered %s[%d]: resume at %d, %d ids in the duplicate window, outputs "
                "already written after the last checkpoint: %s",
                tp.topic,
                tp.partition,
                tp.offset,
                len(window),
                {topic: len(ids) for topic, ids in recovery.written_after_checkpoint.items()},
            )
        log.info(
            "read %d progress records to adopt %d partitions",
            self.ledger.progress_records_read - read_before,
            len(partitions),
        )

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Nothing of a partition may be in flight when another worker takes it over.
        self._acknowledged(self.ledger.drain().acknowledged)
        for tp in partitions:
            source = (tp.topic, tp.partition)
            self.engine.release_partition(*source)
            self.ledger.release(source)
            self._assigned.discard(source)
            self._stalls.forget(source)
            if self._observer is not None:
                self._observer.partition_revoked(*source)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Lost, not handed over: another worker may own them already and is writing
        # their audit and checkpoints. What is held of them is dropped first, so the
        # drain writes nothing of theirs; their in-flight deliveries may still land,
        # late, once (checkpoints mode does not fence a worker that lost its group).
        for tp in partitions:
            self.ledger.release((tp.topic, tp.partition))
        self._on_revoke(consumer, partitions)

    def _rewind_to_committed(self) -> None:
        """After an aborted batch: forget its duplicate ids and resume at the commit."""
        partitions = [TopicPartition(topic, partition) for topic, partition in self._assigned]
        for tp in partitions:
            self.engine.release_partition(tp.topic, tp.partition)
            self.ledger.release((tp.topic, tp.partition))
        self._assigned.clear()
        if not partitions:
            return
        self._adopt(partitions)
        for tp in partitions:
            try:
                self._consumer.seek(tp)
            except KafkaException as exc:  # revoked meanwhile: its next owner recovers it
                log.info("not resuming %s[%d]: %s", tp.topic, tp.partition, exc)

    # -- the loop ------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume, govern, hand to the ledger, until :meth:`stop`."""
        self.ledger.start()
        self._consumer.subscribe(
            list(self._ingress),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        observer = self._observer
        next_gauges = 0.0
        try:
            while not self._stop.is_set():
                if observer is not None:
                    # Every turn, traffic or not: a withdrawal is in force from here on.
                    observer.state_in_force(self._state_source())
                    if time.monotonic() >= next_gauges:
                        self._report_gauges(observer)
                        next_gauges = time.monotonic() + 1.0
                batch = self._next_batch()
                if not batch:
                    continue
                self._step("consumed")
                started = time.perf_counter()
                state = self._state_source()
                if observer is not None:
                    observer.state_in_force(state)  # its series exist before it counts
                now = datetime.now(UTC)
                now_ms = int(now.timestamp() * 1000)
                result = self.engine.govern(batch, state, now, now_ms)
                self._step("governed")
                outcome = self.ledger.submit(Submitted(result, now_ms, len(batch), started))
                if outcome.rewind:
                    self._rewind_to_committed()
                self._acknowledged(outcome.acknowledged)
        finally:
            self.ledger.close()

    def _next_batch(self) -> list[Any]:
        """Up to a batch of fetched records: what arrives within the batch timeout.

        When nothing came, the previous batches are seen through (acknowledged) and the
        worker waits for the *first* record only: a ``consume`` with the idle timeout
        would hold that record back until a whole batch or the timeout, which at a
        light rate is the timeout on every event.
        """
        consumer, config = self._consumer, self.config
        messages = consumer.consume(config.batch_size, config.batch_timeout_seconds)
        if not messages:
            self._acknowledged(self.ledger.drain(final=False).acknowledged)
            first = consumer.poll(IDLE_CONSUME_TIMEOUT_SECONDS)
            if first is None:
                return []
            messages = [first, *consumer.consume(config.batch_size - 1, 0)]
        batch = []
        for message in messages:
            error = message.error()
            if error is None:
                batch.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
        return batch

    def _acknowledged(self, batches: tuple[Submitted, ...]) -> None:
        for batch in batches:
            self.batches += 1
            self.events += batch.events
            if self._observer is not None:
                self._observer.batch_completed(
                    batch.result.counts,
                    batch.events,
                    time.perf_counter() - batch.started,
                    acknowledged_at=time.time(),
                )

    def _report_gauges(self, observer: WorkerObserver) -> None:
        """Consumer lag and stall of each owned ingress partition, and the state's gauges.

        Lag is the fetch response's high watermark (cached by the client from its last
        fetch, exact on every broker we run on) minus the next offset to process.
        """
        for topic, partition in sorted(self._assigned):
            tp = TopicPartition(topic, partition)
            try:
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                (position,) = self._consumer.position([tp])
            except KafkaException:
                continue
            if high >= 0 and position.offset >= 0:
                observer.report_position(topic, partition, position.offset, high, self._stalls)
        observer.report_state_gauges(self._state_source())
