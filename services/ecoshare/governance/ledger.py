"""The checkpoint ledger: how a governed batch becomes acknowledged, and how a worker
taking over a partition finds where its predecessor stopped.

One interface, two mechanisms (see :mod:`ecoshare.governance.progress` for the records):

- :class:`TransactionalLedger` (Apache Kafka): outputs, the batch's checkpoint and the
  consumed offsets in one transaction per batch (``send_offsets_to_transaction`` with
  the group's metadata), so a zombie's batch is aborted and never seen;
- :class:`~ecoshare.governance.pipelined_ledger.PipelinedLedger` (brokers without
  transactions): a batch's outputs are produced while the next batch is governed; the
  audit blocks and checkpoints of the acknowledged batches are written together, at
  most once per interval.

The worker calls :meth:`CheckpointLedger.submit` with each governed batch and
:meth:`CheckpointLedger.drain` when it has nothing to govern; both return the batches
acknowledged by the call. ``step`` (tests) is told each step between produce and commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from ecoshare.config.topics import TopicNames
from ecoshare.governance.engine import BatchResult, Produce
from ecoshare.governance.progress import (
    AcknowledgedIds,
    Checkpoint,
    IdRun,
    SnapshotPolicy,
    Source,
    snapshot_chunks,
)
from ecoshare.governance.recovery import LogReader, read_output_tails, read_progress

log = logging.getLogger(__name__)
MARKER_HEADER = "ecoshare-marker"
# A commit retried this long (its coordinator unreachable) is aborted and its batch
# re-read: longer than a coordinator's failover, shorter than a reader's patience.
COMMIT_GIVE_UP_SECONDS = 30.0
StepHook = Callable[[str], None]


class OutputsNotAcknowledgedError(RuntimeError):
    """Outputs were not acknowledged; the worker stops without committing."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """A governed batch handed to the ledger."""

    result: BatchResult
    now_ms: int
    events: int
    started: float  # perf_counter() when it was consumed


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call did: batches whose outputs are now acknowledged (with
    transactions, committed; without, their deliveries acknowledged, their audit and
    checkpoint following within the ledger's interval), and whether the worker must
    resume its partitions at the commit (an aborted transaction)."""

    acknowledged: tuple[Submitted, ...] = ()
    rewind: bool = False


@dataclass(frozen=True, slots=True)
class Recovery:
    """Where an adopted partition resumes and what its predecessor left behind."""

    resume_at: int
    window: tuple[IdRun, ...]
    written_after_checkpoint: dict[str, set[int]]


@dataclass(slots=True)
class BatchAcks:
    """Acknowledgements still awaited for one batch (one per output partition it
    wrote: its last output there) and the output ends they reported, per source."""

    outstanding: int
    ends: dict[Source, dict[str, int]] = field(default_factory=dict)


@dataclass
class _SourceLedger:
    """The ledger's bookkeeping of one owned ingress partition."""

    acknowledged: AcknowledgedIds
    seq: int
    bank: int
    batches_since_snapshot: int = 0
    ids_since_snapshot: int = 0
    snapshot_due: bool = True  # a new owner snapshots first: the next takeover reads less


@dataclass
class LedgerSettings:
    names: TopicNames
    dedup_window_ms: int
    dedup_capacity: int
    snapshots: SnapshotPolicy = field(default_factory=SnapshotPolicy)
    # Without transactions: how often, at most, the audit blocks and checkpoints of
    # acknowledged batches are written together (a takeover re-reads at most this much
    # more, and the audit trail lags by it); 0 writes them after every batch.
    audit_checkpoint_interval_ms: int = 1000


class CheckpointLedger:
    """Produces a batch's outputs, checkpoints and commits it; recovers partitions."""

    transactional = False

    def __init__(
        self,
        settings: LedgerSettings,
        producer: Any,
        consumer: Any,
        reader: LogReader,
        step: StepHook | None = None,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._consumer = consumer
        self._reader = reader
        self._step = step or (lambda name: None)
        self._sources: dict[Source, _SourceLedger] = {}
        self._output_ends: dict[Source, dict[str, int]] = {}
        self._delivery_errors: list[str] = []
        self.progress_records_read = 0

    # -- the acknowledgement step -----------------------------------------------------

    def start(self) -> None:
        """Before the first batch."""

    def submit(self, batch: Submitted) -> Outcome:
        raise NotImplementedError

    def drain(self, *, final: bool = True) -> Outcome:
        """Acknowledge whatever is in flight: nothing to govern (not ``final``), or a
        revoke or close (``final``: nothing may stay held)."""
        return Outcome()

    def close(self) -> None:
        try:
            self.drain()
            self._producer.flush(10.0)
        finally:
            self._consumer.close()

    # -- outputs ----------------------------------------------------------------------

    def _produce(self, outputs: Sequence[Produce], *, track: bool) -> BatchAcks:
        """Queue outputs (of a batch, or held audit blocks). With ``track``, the last
        output of each output partition carries a callback recording its end for the
        checkpoint (the others, acknowledged in order before it, only report errors);
        without, no callback at all (a transaction's commit fails if any output did)."""
        last_index: dict[tuple[str, int], int] = {}
        for index, output in enumerate(outputs):
            last_index[(output.topic, output.partition)] = index
        acks = BatchAcks(len(last_index) if track else 0)
        final = set(last_index.values()) if track else set()
        produce = self._producer.produce
        extra: dict[str, Any] = {"on_delivery": self._on_error} if track else {}
        for index, output in enumerate(outputs):
            callback = {"on_delivery": self._tracker(output, acks)} if index in final else extra
            while True:
                try:
                    produce(
                        output.topic,
                        value=output.value,
                        key=output.key,
                        partition=output.partition,
                        headers=output.headers,
                        **callback,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.01)
        self._producer.poll(0)
        return acks

    def _on_error(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}[{message.partition()}]: {error}")

    def _tracker(
        self, output: Produce, acks: BatchAcks
    ) -> Callable[[KafkaError | None, Message], None]:
        source = output.source

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            acks.outstanding -= 1
            if error is not None:
                self._on_error(error, message)
            else:
                ends = acks.ends.setdefault(source, {})
                ends[message.topic() or ""] = (message.offset() or 0) + 1

        return on_delivery

    def _flush(self) -> None:
        while self._producer.flush(30.0):
            log.warning("outputs still unacknowledged after 30 s; waiting")
        self._raise_delivery_errors()

    def _raise_delivery_errors(self) -> None:
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise OutputsNotAcknowledgedError(f"{len(errors)} outputs failed, first: {errors[0]}")

    # -- checkpoints ------------------------------------------------------------------

    def _write_checkpoints(self, result: BatchResult, now_ms: int) -> list[TopicPartition]:
        """Append each partition's checkpoint (a snapshot when due); the offsets to commit."""
        offsets = []
        for source, batch in result.partitions.items():
            checkpoint = Checkpoint(
                batch.next_offset,
                dict(self._output_ends.get(source, {})),
                tuple(batch.new_event_ids),
                now_ms,
            )
            self._append(source, checkpoint)
            offsets.append(TopicPartition(source[0], source[1], batch.next_offset))
        return offsets

    def _append(self, source: Source, checkpoint: Checkpoint) -> None:
        ledger = self._sources.get(source)
        if ledger is None:  # not owned (any more): its next owner recovers it
            return
        policy = self._settings.snapshots
        checkpoint = Checkpoint(
            checkpoint.next_offset,
            checkpoint.outputs,
            checkpoint.event_ids,
            checkpoint.at_ms,
            ledger.seq,
        )
        ledger.seq += 1
        ledger.acknowledged.add(checkpoint.at_ms, checkpoint.event_ids)
        ids = len(checkpoint.event_ids)
        progress, partition = self._settings.names.progress, source[1]
        if ledger.snapshot_due or policy.due(
            ledger.batches_since_snapshot, ledger.ids_since_snapshot + ids, len(ledger.acknowledged)
        ):
            for chunk in snapshot_chunks(
                checkpoint, ledger.acknowledged, ledger.bank, policy.ids_per_chunk
            ):
                self._produce_progress(progress, partition, chunk.key(source), chunk.encode())
            ledger.bank = 1 - ledger.bank
            ledger.batches_since_snapshot = ledger.ids_since_snapshot = 0
            ledger.snapshot_due = False
        else:
            key = checkpoint.key(source, policy.every_batches)
            self._produce_progress(progress, partition, key, checkpoint.encode())
            ledger.batches_since_snapshot += 1
            ledger.ids_since_snapshot += ids

    def _produce_progress(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(
                    topic,
                    key=key,
                    value=value,
                    partition=partition,
                    **({} if self.transactional else {"on_delivery": self._on_error}),
                )
                return
            except BufferError:
                self._producer.poll(0.01)

    # -- partitions -------------------------------------------------------------------

    def recover(
        self, partitions: Iterable[tuple[str, int, Iterable[str]]], now_ms: int
    ) -> dict[Source, Recovery]:
        """Adopt ingress partitions (topic, partition, outputs that may hold writes of it
        that no checkpoint knows of yet, read from 0): where each resumes, its window."""
        wanted = [(topic, partition, tuple(outputs)) for topic, partition, outputs in partitions]
        sources = [(topic, partition) for topic, partition, _ in wanted]
        progress, read = read_progress(
            self._reader,
            self._settings.names.progress,
            sources,
            self._settings.snapshots,
        )
        self.progress_records_read += read
        written = read_output_tails(self._reader, wanted, progress)
        recoveries: dict[Source, Recovery] = {}
        for source in sources:
            found = progress[source]
            self._sources[source] = _SourceLedger(
                AcknowledgedIds(
                    self._settings.dedup_window_ms, self._settings.dedup_capacity, found.runs
                ),
                found.next_seq,
                found.next_bank,
            )
            self._sources[source].acknowledged.expire(now_ms)
            resume_at = self._resume_at(source, found.last, now_ms)
            recoveries[source] = Recovery(resume_at, tuple(found.runs), written.get(source, {}))
        return recoveries

    def release(self, source: Source) -> None:
        self._sources.pop(source, None)
        self._output_ends.pop(source, None)

    def _resume_at(self, source: Source, last: Checkpoint | None, now_ms: int) -> int:
        if last is None:
            return self._first_position(source, now_ms)
        self._output_ends[source] = dict(last.outputs)
        return last.next_offset

    def _first_position(self, source: Source, now_ms: int) -> int:
        raise NotImplementedError

    def committed_offset(self, source: Source, attempts: int = 6) -> int:
        """The group's committed offset of ``source`` (0 if none), retried while the
        group coordinator is busy (a rebalance on a loaded cluster can take longer than
        one request's timeout; failing here would kill the worker in its callback)."""
        for attempt in range(attempts):
            try:
                committed = self._consumer.committed([TopicPartition(*source)], 10)
                return committed[0].offset if committed[0].offset >= 0 else 0
            except KafkaException as exc:
                if attempt == attempts - 1:
                    raise
                log.warning("committed offset of %s[%d] not read yet: %s", *source, exc)
        raise AssertionError("unreachable")


class TransactionalLedger(CheckpointLedger):
    """Kafka transactions: outputs, checkpoint and consumed offsets commit together."""

    transactional = True

    def start(self) -> None:
        self._producer.init_transactions(30.0)

    def submit(self, batch: Submitted) -> Outcome:
        """One transaction. A worker that lost its partitions while paused (a zombie) is
        refused when its offsets join the transaction: the batch is aborted,
        read_committed readers never see it, and the worker re-reads from the commit."""
        producer = self._producer
        try:
            producer.begin_transaction()
            self._produce(batch.result.outputs, track=False)
            self._step("produced")
            offsets = self._write_checkpoints(batch.result, batch.now_ms)
            self._step("checkpointed")
            producer.send_offsets_to_transaction(
                offsets, self._consumer.consumer_group_metadata(), 30.0
            )
            self._step("offsets-sent")
            if not self._commit_with_retries():
                # Not committed within the give-up time (a coordinator that stays
                # unreachable): abort and re-read rather than wait without end.
                return self._abort(batch, "commit not acknowledged in time")
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError) or not error.txn_requires_abort():
                raise
            return self._abort(batch, error)
        self._step("committed")
        self._raise_delivery_errors()
        return Outcome((batch,))

    def _abort(self, batch: Submitted, why: object) -> Outcome:
        """Abort the open transaction; the worker re-reads the batch from the commit."""
        log.warning(
            "transaction of %d events aborted (%s); re-reading from the commit", batch.events, why
        )
        self._producer.abort_transaction(30.0)
        self._delivery_errors.clear()
        return Outcome(rewind=True)

    def _commit_with_retries(self) -> bool:
        """Commit, retrying retriable errors for up to COMMIT_GIVE_UP_SECONDS; False if
        it was not committed by then."""
        deadline = time.monotonic() + COMMIT_GIVE_UP_SECONDS
        while True:
            try:
                self._producer.commit_transaction(10.0)
                return True
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not isinstance(error, KafkaError) or not error.retriable():
                    raise
                if time.monotonic() >= deadline:
                    log.warning(
                        "transaction not committed after %.0f s: %s", COMMIT_GIVE_UP_SECONDS, error
                    )
                    return False
                log.warning("transaction commit retried: %s", error)

    def _first_position(self, source: Source, now_ms: int) -> int:
        # The committed offset joined the same transaction as the last checkpoint.
        return self.committed_offset(source)

    def _resume_at(self, source: Source, last: Checkpoint | None, now_ms: int) -> int:
        # Nothing is written outside a committed transaction: checkpoints need no
        # output ends, and the committed offset is the last checkpoint's.
        return self.committed_offset(source)
