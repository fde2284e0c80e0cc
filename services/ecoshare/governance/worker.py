"""A governance worker process: Faust keeps the control plane, confluent-kafka the hot path.

The Faust app (in its own thread) holds partners, agreements and consents as tables
fed by the compacted control topics. The hot path runs in the main thread on a plain
confluent-kafka consumer in the ``ecoshare-governance`` group (so Kafka spreads the
ingress partitions over the workers), governs batches with the engine, produces the
outputs, waits for their acknowledgement, appends a checkpoint per partition and only
then commits offsets. See :mod:`ecoshare.governance.progress` for why a killed worker
neither loses nor repeats a delivery.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.schema_registry import SchemaRegistryClient

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.adapters.kafka.config import worker_consumer_config, worker_producer_config
from ecoshare.catalog.event_catalog import Catalog
from ecoshare.config.topics import TopicNames, TopicPolicy, value_subject
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.engine import BatchResult, GovernanceEngine, Produce
from ecoshare.governance.observer import WorkerObserver
from ecoshare.governance.progress import (
    SOURCE_HEADER,
    Checkpoint,
    PartitionHistory,
    load_partition_histories,
    progress_key,
)
from ecoshare.governance.schemas import RegistrySchemaLookup, register_schema

log = logging.getLogger(__name__)
MARKER_HEADER = "ecoshare-marker"


@dataclass(frozen=True, slots=True)
class _PendingBatch:
    """A governed batch whose outputs are produced but not yet acknowledged."""

    result: BatchResult
    now_ms: int
    events: int
    started: float


class OutputsNotAcknowledgedError(RuntimeError):
    """Outputs were not acknowledged; the worker stops without committing."""


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
    max_event_bytes: int = 65536
    dedup_window_ms: int = 86_400_000
    dedup_capacity: int = 500_000
    session_timeout_ms: int = 6000
    engine: str = "auto"
    # Kafka transactions (outputs, checkpoint and offsets commit atomically) where the
    # broker has them; the checkpoint-and-tail recovery of `progress` where it has not.
    transactions: bool = False
    # A stable name for this worker's slot (e.g. "worker-0" under `ecoshare up`): its
    # transactional id and, with transactions, its static group membership. A worker
    # restarted in the slot aborts what its predecessor left open and takes its
    # partitions back without a rebalance. None: a fresh identity per process.
    worker_id: str | None = None
    transaction_timeout_ms: int = 10_000
    topic_policy: TopicPolicy = field(default_factory=TopicPolicy)


def governed_topics(
    names: TopicNames,
    event_types: Iterable[str],
    partitions: int,
    policy: TopicPolicy | None = None,
) -> list[TopicSpec]:
    """Topics the governance data plane needs (delivery topics are created on demand).

    Ingress topics stamp records with the broker's clock (LogAppendTime), so a record's
    timestamp is the platform's ingest time, whatever the publisher's clock says; brokers
    that ignore the setting (the embedded one) keep the producing client's time.
    """
    policy = policy or TopicPolicy()
    specs = [
        TopicSpec(
            names.ingress(event_type), partitions, {"message.timestamp.type": "LogAppendTime"}
        )
        for event_type in event_types
    ]
    specs += [
        TopicSpec(names.audit, partitions, {"retention.ms": str(policy.audit_retention_ms)}),
        TopicSpec(names.quarantine, partitions),
        TopicSpec(names.progress, partitions),
    ]
    specs += [TopicSpec.compacted(topic) for topic in names.control_topics()]
    return specs


class GovernanceWorker:
    """One worker's hot loop. ``state_source`` returns the current GovernanceState."""

    def __init__(
        self,
        config: WorkerConfig,
        catalog: Catalog,
        state_source: Callable[[], GovernanceState],
        observer: WorkerObserver | None = None,
    ) -> None:
        self.config = config
        self._state_source = state_source
        self._observer = observer
        self._stop = threading.Event()
        self._registry = SchemaRegistryClient({"url": config.schema_registry_url})
        names = config.names
        self._ingress = {names.ingress(event_type): event_type for event_type in config.event_types}
        self._created_topics: set[str] = set()
        classification = {
            event_type: catalog.classification(event_type) for event_type in config.event_types
        }
        self.engine = GovernanceEngine(
            schemas=RegistrySchemaLookup(self._registry, self._ingress),
            classification=classification,
            master_secret=config.master_secret,
            delivery_topic=names.delivery,
            audit_topic=names.audit,
            quarantine_topic=names.quarantine,
            register_delivery_schema=self._prepare_delivery_topic,
            max_event_bytes=config.max_event_bytes,
            dedup_window_ms=config.dedup_window_ms,
            dedup_capacity=config.dedup_capacity,
            ingress_partitions=self._ingress_partition_count,
            engine=config.engine,
        )
        self._partition_counts: dict[str, int] = {}
        # One transactional id per worker process: fencing of a zombie rests on the
        # consumer group generation (KIP-447), checked when its offsets join the
        # transaction. A transaction left open by a killed worker blocks read_committed
        # readers of its outputs until the broker aborts it, so keep the timeout short.
        self._producer = Producer(
            worker_producer_config(
                config.bootstrap_servers,
                transactional_id=self._identity() if config.transactions else None,
                transaction_timeout_ms=config.transaction_timeout_ms,
            )
        )
        # Incremental rebalancing (cooperative-sticky, in the config): when a worker
        # dies, joins or leaves, only the partitions that move stop.
        self._consumer = Consumer(
            worker_consumer_config(
                config.bootstrap_servers,
                config.group_id,
                session_timeout_ms=config.session_timeout_ms,
                group_instance_id=(
                    self._identity() if config.transactions and config.worker_id else None
                ),
            )
        )
        self._output_ends: dict[tuple[str, int], dict[str, int]] = {}
        self._delivery_errors: list[str] = []
        self._assigned: set[tuple[str, int]] = set()
        self._pending: _PendingBatch | None = None
        # (topic, partition) -> (position last seen, monotonic time it last moved)
        self._progress: dict[tuple[str, int], tuple[int, float]] = {}
        self.batches = 0
        self.events = 0

    def _identity(self) -> str:
        return f"{self.config.group_id}-{self.config.worker_id or uuid.uuid4().hex}"

    # -- topics and schemas --------------------------------------------------------

    def _prepare_delivery_topic(self, topic: str, schema: dict[str, Any]) -> int:
        if topic not in self._created_topics:
            ensure_topics(
                self.config.bootstrap_servers,
                [TopicSpec(topic, self.config.ingress_partitions)],
                policy=self.config.topic_policy,
            )
            self._created_topics.add(topic)
        return register_schema(self._registry, value_subject(topic), schema)

    def _ingress_partition_count(self, topic: str) -> int:
        """Partitions of an ingress topic, read once per assignment (where keys belong)."""
        count = self._partition_counts.get(topic)
        if count is None:
            metadata = self._consumer.list_topics(topic, timeout=10)
            count = self._partition_counts[topic] = len(metadata.topics[topic].partitions)
        return count

    # -- partition life cycle --------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._partition_counts.clear()
        self._recover_partitions(partitions)
        consumer.incremental_assign(partitions)
        log.info("assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in partitions])

    def _recover_partitions(self, partitions: list[TopicPartition]) -> None:
        """Adopt ``partitions``: rebuild their duplicate windows, set where each resumes."""
        state = self._state_source()
        now_ms = int(time.time() * 1000)
        names = self.config.names
        histories = load_partition_histories(
            self.config.bootstrap_servers,
            names.progress,
            [
                (
                    tp.topic,
                    tp.partition,
                    # With transactions nothing is written outside a committed
                    # checkpoint: there is no output tail to read.
                    []
                    if self.config.transactions
                    else [
                        *(
                            names.delivery(sub, self._ingress[tp.topic])
                            for sub in state.candidate_subscribers(self._ingress[tp.topic])
                        ),
                        names.audit,
                        names.quarantine,
                    ],
                )
                for tp in partitions
            ],
        )
        for tp in partitions:
            self._recover(tp, histories[(tp.topic, tp.partition)], now_ms)
            self._assigned.add((tp.topic, tp.partition))
            if self._observer is not None:
                self._observer.partition_assigned(tp.topic, tp.partition)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing of a partition may be in flight when another worker takes it over.
        self._complete_pending()
        for tp in partitions:
            self.engine.release_partition(tp.topic, tp.partition)
            self._output_ends.pop((tp.topic, tp.partition), None)
            self._assigned.discard((tp.topic, tp.partition))
            self._progress.pop((tp.topic, tp.partition), None)
            if self._observer is not None:
                self._observer.partition_revoked(tp.topic, tp.partition)
        consumer.incremental_unassign(partitions)

    def _recover(self, tp: TopicPartition, history: PartitionHistory, now_ms: int) -> None:
        window = self.engine.new_window()
        for checkpoint in history.checkpoints:
            window.add_all(checkpoint.event_ids, checkpoint.at_ms)
        window.expire(now_ms)
        self.engine.adopt_partition(
            tp.topic, tp.partition, window, history.written_after_checkpoint
        )
        last = history.last
        if self.config.transactions:
            # The committed offset joined the same transaction as the last checkpoint.
            tp.offset = self._committed_offset(tp)
        elif last is None:
            ends = self._mark_shared_outputs(tp.topic, tp.partition)
            start = self._committed_offset(tp)
            self._write_checkpoints({(tp.topic, tp.partition): Checkpoint(start, ends, (), now_ms)})
            tp.offset = start
        else:
            self._output_ends[(tp.topic, tp.partition)] = dict(last.outputs)
            tp.offset = last.next_offset
        log.info(
            "recovered %s[%d]: resume at %d, %d ids in the duplicate window, outputs already "
            "written after the last checkpoint: %s",
            tp.topic,
            tp.partition,
            tp.offset,
            len(window),
            {topic: len(ids) for topic, ids in history.written_after_checkpoint.items()},
        )

    def _committed_offset(self, tp: TopicPartition, attempts: int = 6) -> int:
        """The group's committed offset of ``tp`` (0 if none), retried while the group
        coordinator is busy (a rebalance on a loaded cluster can take longer than one
        request's timeout; failing here would kill the worker inside its callback)."""
        for attempt in range(attempts):
            try:
                committed = self._consumer.committed([TopicPartition(tp.topic, tp.partition)], 10)
                return committed[0].offset if committed[0].offset >= 0 else 0
            except KafkaException as exc:
                if attempt == attempts - 1:
                    raise
                log.warning(
                    "committed offset of %s[%d] not read yet: %s", tp.topic, tp.partition, exc
                )
        raise AssertionError("unreachable")

    def _mark_shared_outputs(self, topic: str, partition: int) -> dict[str, int]:
        """Write a marker to the shared outputs so the first checkpoint knows their ends."""
        names = self.config.names
        ends: dict[str, int] = {}

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                ends[message.topic() or ""] = (message.offset() or 0) + 1

        for shared in (names.audit, names.quarantine):
            self._producer.produce(
                shared,
                value=b"",
                partition=partition,
                headers=[(MARKER_HEADER, b"1"), (SOURCE_HEADER, f"{topic}:{partition}".encode())],
                on_delivery=on_delivery,
            )
        self._flush()
        self._output_ends[(topic, partition)] = dict(ends)
        return ends

    # -- the loop ------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume, govern, produce, checkpoint, commit, until :meth:`stop`."""
        if self.config.transactions:
            self._producer.init_transactions(30.0)
        self._consumer.subscribe(
            list(self._ingress),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
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
                messages = self._consumer.consume(
                    self.config.batch_size, self.config.batch_timeout_seconds
                )
                batch = [m for m in messages if m.error() is None]
                for message in messages:
                    error = message.error()
                    if error is not None and error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error: %s", error)
                if not batch:
                    self._complete_pending()
                    continue
                started = time.perf_counter()
                state = self._state_source()
                if observer is not None:
                    observer.state_in_force(state)  # its series exist before it counts
                now = datetime.now(UTC)
                now_ms = int(now.timestamp() * 1000)
                result = self.engine.govern(batch, state, now, now_ms)  # type: ignore[arg-type]
                if self.config.transactions:
                    self._commit_transaction(result, now_ms, len(batch), started)
                    continue
                # Pipelined: this batch was governed while the previous one's outputs
                # were on their way; only now wait for those, checkpoint and commit them.
                self._complete_pending()
                self._produce(result)
                self._pending = _PendingBatch(result, now_ms, len(batch), started)
                self.batches += 1
                self.events += len(batch)
        finally:
            self._close()

    def _commit_transaction(
        self, result: BatchResult, now_ms: int, events: int, started: float
    ) -> None:
        """Outputs, checkpoint and consumed offsets of one batch in one transaction.

        A worker that lost its partitions while paused (a zombie) is refused when its
        offsets join the transaction: the batch is aborted, read_committed readers never
        see it, and the worker re-reads from what is committed.
        """
        producer = self._producer
        try:
            producer.begin_transaction()
            self._produce(result)
            checkpoints = self._checkpoints(result, now_ms)
            self._write_checkpoints(checkpoints, wait=False)
            producer.send_offsets_to_transaction(
                [
                    TopicPartition(topic, partition, checkpoint.next_offset)
                    for (topic, partition), checkpoint in checkpoints.items()
                ],
                self._consumer.consumer_group_metadata(),
                30.0,
            )
            self._commit_with_retries()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError) or not error.txn_requires_abort():
                raise
            log.warning(
                "transaction of %d events aborted (%s); re-reading from the commit", events, error
            )
            producer.abort_transaction(30.0)
            self._delivery_errors.clear()
            self._rewind_to_committed()
            return
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise OutputsNotAcknowledgedError(f"{len(errors)} outputs failed, first: {errors[0]}")
        self.batches += 1
        self.events += events
        if self._observer is not None:
            self._observer.batch_completed(
                result.counts,
                events,
                time.perf_counter() - started,
                acknowledged_at=time.time(),
            )

    def _commit_with_retries(self) -> None:
        while True:
            try:
                self._producer.commit_transaction(30.0)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and error.retriable():
                    continue
                raise

    def _rewind_to_committed(self) -> None:
        """After an aborted batch: forget its duplicate ids and resume at the commit."""
        partitions = [TopicPartition(topic, partition) for topic, partition in self._assigned]
        for tp in partitions:
            self.engine.release_partition(tp.topic, tp.partition)
        self._assigned.clear()
        if not partitions:
            return
        self._recover_partitions(partitions)
        for tp in partitions:
            try:
                self._consumer.seek(tp)
            except KafkaException as exc:  # revoked meanwhile: its next owner recovers it
                log.info("not resuming %s[%d]: %s", tp.topic, tp.partition, exc)

    def _complete_pending(self) -> None:
        """Wait for the pending batch's outputs, then checkpoint and commit it."""
        pending = self._pending
        if pending is None:
            return
        self._flush()
        self._pending = None
        self._checkpoint_and_commit(pending.result, pending.now_ms)
        if self._observer is not None:
            self._observer.batch_completed(
                pending.result.counts,
                pending.events,
                time.perf_counter() - pending.started,
                acknowledged_at=time.time(),
            )

    def _produce(self, result: BatchResult) -> None:
        """Queue every output of a batch; :meth:`_complete_pending` waits for them."""
        outputs = result.outputs
        last_index: dict[tuple[str, int], int] = {}
        for index, output in enumerate(outputs):
            last_index[(output.topic, output.partition)] = index
        final = set(last_index.values())
        produce = self._producer.produce
        on_error = self._on_error
        for index, output in enumerate(outputs):
            callback = self._tracker(output) if index in final else on_error
            while True:
                try:
                    produce(
                        output.topic,
                        value=output.value,
                        key=output.key,
                        partition=output.partition,
                        headers=output.headers,  # type: ignore[arg-type]
                        on_delivery=callback,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.01)
        self._producer.poll(0)

    def _on_error(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}[{message.partition()}]: {error}")

    def _tracker(self, output: Produce) -> Callable[[KafkaError | None, Message], None]:
        source = next(
            (value.decode() for name, value in output.headers if name == SOURCE_HEADER), None
        )

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self._on_error(error, message)
            elif source is not None:
                topic, _, partition = source.rpartition(":")
                ends = self._output_ends.setdefault((topic, int(partition)), {})
                ends[message.topic() or ""] = (message.offset() or 0) + 1

        return on_delivery

    def _flush(self) -> None:
        while self._producer.flush(30.0):
            log.warning("outputs still unacknowledged after 30 s; waiting")
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise OutputsNotAcknowledgedError(f"{len(errors)} outputs failed, first: {errors[0]}")

    def _checkpoints(self, result: BatchResult, now_ms: int) -> dict[tuple[str, int], Checkpoint]:
        return {
            source: Checkpoint(
                batch.next_offset,
                dict(self._output_ends.get(source, {})),
                tuple(batch.new_event_ids),
                now_ms,
            )
            for source, batch in result.partitions.items()
        }

    def _checkpoint_and_commit(self, result: BatchResult, now_ms: int) -> None:
        checkpoints = self._checkpoints(result, now_ms)
        # The checkpoint is not waited for here: the next batch's flush (or the final
        # one) acknowledges it. Losing it in a crash is safe: recovery falls back to the
        # previous checkpoint and finds this batch's outputs in the output tails.
        self._write_checkpoints(checkpoints, wait=False)
        offsets = [
            TopicPartition(topic, partition, checkpoint.next_offset)
            for (topic, partition), checkpoint in checkpoints.items()
        ]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # the checkpoint is the truth; a lost commit is harmless
            log.warning("offset commit failed: %s", exc)

    def _write_checkpoints(
        self, checkpoints: dict[tuple[str, int], Checkpoint], *, wait: bool = True
    ) -> None:
        progress = self.config.names.progress
        for (topic, partition), checkpoint in checkpoints.items():
            self._producer.produce(
                progress,
                key=progress_key(topic, partition),
                value=checkpoint.encode(),
                partition=partition,
                on_delivery=self._on_error,
            )
        if wait:
            self._flush()
        else:
            self._producer.poll(0)

    def _report_gauges(self, observer: WorkerObserver) -> None:
        """Consumer lag per owned ingress partition, and the governance state in force.

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
                lag = max(0, high - position.offset)
                observer.report_lag(topic, partition, lag)
                observer.report_stalled(
                    topic,
                    partition,
                    self._stalled_seconds((topic, partition), position.offset, lag),
                )
        observer.report_state_gauges(self._state_source())

    def _stalled_seconds(self, source: tuple[str, int], position: int, lag: int) -> float:
        """Seconds ``source`` has had lag without its position moving (0 otherwise)."""
        now = time.monotonic()
        seen = self._progress.get(source)
        if seen is None or seen[0] != position or lag == 0:
            self._progress[source] = (position, now)
            return 0.0
        stalled = now - seen[1]
        if stalled > 30:
            log.warning(
                "%s[%d] has made no progress for %.0f s with %d messages of lag",
                source[0],
                source[1],
                stalled,
                lag,
            )
        return stalled

    def _close(self) -> None:
        try:
            self._complete_pending()
            self._producer.flush(10.0)
        finally:
            self._consumer.close()
