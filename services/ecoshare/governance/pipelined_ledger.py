"""The checkpoint ledger of brokers without transactions: pipelined outputs, and the
audit blocks and checkpoints of acknowledged batches written together.

A batch's deliveries (and quarantine copies) are produced at once, while the next batch
is governed; when they are acknowledged the batch is *held*. Its audit blocks and its
checkpoint are written later, together with those of every batch held since the last
such write, at most once per ``LedgerSettings.audit_checkpoint_interval_ms`` (and
whenever the worker drains: idle after the interval, a revoke, a close):

1. the held audit blocks are produced, back to back, so each audit partition gets one
   produce batch for them all;
2. once those are acknowledged, one checkpoint per ingress partition covers every held
   batch (their event ids combined), and the offsets are committed.

Why: the embedded broker walks every stored batch of a partition on each fetch, so a
batch per governed batch on the audit and progress partitions (a hundred a second at a
light rate) put a takeover's read of the progress topic, and the audit trail's readers,
into its slow regime within minutes. Written together, they grow by one batch per
interval.

Why it is safe: a checkpoint is written only once everything it covers is acknowledged,
audit included. A crash before it resumes at the previous checkpoint, and recovery finds
the deliveries and audit blocks already written after it in the output tails (each
carries its source partition and offsets), so they are neither repeated nor lost; the
re-read events enter the duplicate window again as they are re-governed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from ecoshare.governance.ledger import (
    MARKER_HEADER,
    BatchAcks,
    CheckpointLedger,
    Outcome,
    OutputsNotAcknowledgedError,
    Submitted,
)
from ecoshare.governance.progress import SOURCE_HEADER, Checkpoint, Source
from ecoshare.governance.rendering import Produce

log = logging.getLogger(__name__)
# Event ids one write may checkpoint: a write is due at this many whatever the interval
# (a checkpoint record of every id of a second at full speed would pass the client's
# 1 MB record limit), and a worker whose audit blocks are not acknowledged yet waits
# for them here rather than hold more.
MAX_HELD_IDS = 10_000


@dataclass(slots=True)
class _Held:
    """What the checkpoint needs of an acknowledged batch whose audit blocks and
    checkpoint are not written yet (not its deliveries: a second of them at full speed
    is tens of megabytes): per ingress partition, its next offset, new event ids and
    output ends as of its acknowledgement."""

    now_ms: int
    positions: dict[Source, tuple[int, list[str]]]
    ends: dict[Source, dict[str, int]]
    audit: list[Produce]


class PipelinedLedger(CheckpointLedger):
    """Checkpoints for brokers without transactions: a batch's outputs are produced,
    then the previous batch's acknowledgements are awaited and it is held; the held
    batches' audit blocks, then their checkpoints, are written together."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_interval_seconds = self._settings.audit_checkpoint_interval_ms / 1000
        self._pending: tuple[Submitted, list[Produce], BatchAcks] | None = None
        self._held: list[_Held] = []
        # Held batches whose audit blocks are produced and awaited, then checkpointed.
        self._auditing: tuple[list[_Held], BatchAcks] | None = None
        self._acked_ends: dict[Source, dict[str, int]] = {}
        self._last_written = time.monotonic()
        self._held_ids = 0
        # A failed output: nothing held or in flight may be checkpointed any more.
        self._failed = False
        self.combined_writes = 0

    def submit(self, batch: Submitted) -> Outcome:
        audit_topic = self._settings.names.audit
        outputs: list[Produce] = []
        audit: list[Produce] = []
        for output in batch.result.outputs:
            (audit if output.topic == audit_topic else outputs).append(output)
        acks = self._produce(outputs, track=True)
        self._step("produced")
        previous, self._pending = self._pending, (batch, audit, acks)
        if previous is None:
            return Outcome()
        self._await(previous[2], "outputs")
        self._hold(*previous)
        if self._auditing is not None and self._held_ids >= MAX_HELD_IDS:
            self._await(self._auditing[1], "audit blocks")
        self._write_together(final=False)
        return Outcome((previous[0],))

    def _await(self, acks: BatchAcks, what: str) -> None:
        waited = 0.0
        while acks.outstanding > 0:
            self._producer.poll(0.05)
            waited += 0.05
            if waited >= 30.0:
                log.warning("%s still unacknowledged after 30 s; waiting", what)
                waited = 0.0

    def drain(self, *, final: bool = True) -> Outcome:
        """Acknowledge what is in flight; write the held audit blocks and checkpoints if
        ``final`` (revoke, close) or if the interval has passed (idle). "Acknowledged":
        the batches' deliveries are; their audit and checkpoint follow with a write."""
        if self._failed:
            return Outcome()
        pending, self._pending = self._pending, None
        if pending is not None:
            self._flush()
            self._hold(*pending)
        self._write_together(final=final)
        return Outcome((pending[0],) if pending is not None else ())

    def _hold(self, batch: Submitted, audit: list[Produce], acks: BatchAcks) -> None:
        """An acknowledged batch: its output ends noted, its audit and checkpoint held."""
        self._raise_delivery_errors()
        self._step("acknowledged")
        owned = self._sources
        held = _Held(batch.now_ms, {}, {}, [block for block in audit if block.source in owned])
        for source, partition in batch.result.partitions.items():
            if source not in owned:  # lost: its next owner recovers it
                continue
            known = self._acked_ends.setdefault(source, dict(self._output_ends.get(source, {})))
            known.update(acks.ends.get(source, {}))
            held.ends[source] = dict(known)
            held.positions[source] = (partition.next_offset, partition.new_event_ids)
            self._held_ids += len(partition.new_event_ids)
        self._held.append(held)

    def _write_together(self, *, final: bool) -> None:
        """Checkpoint the batches whose audit blocks are acknowledged; then, when due,
        produce the held batches' audit blocks (``final``: and see both through)."""
        if self._failed:
            return
        if self._auditing is not None:
            self._producer.poll(0)  # an idle worker serves the acknowledgements here
        if self._auditing is not None and (final or self._auditing[1].outstanding == 0):
            if final:
                self._flush()
            self._checkpoint(*self._auditing)
            self._auditing = None
        due = (
            final
            or self._held_ids >= MAX_HELD_IDS
            or time.monotonic() - self._last_written >= self._write_interval_seconds
        )
        if self._auditing is not None or not self._held or not due:
            return
        held, self._held, self._held_ids = self._held, [], 0
        self._last_written = time.monotonic()
        acks = self._produce([block for entry in held for block in entry.audit], track=True)
        self._auditing = (held, acks)
        self.combined_writes += 1
        self._step("audited")
        if final:
            self._flush()
            self._checkpoint(held, acks)
            self._auditing = None

    def _checkpoint(self, held: list[_Held], audit_acks: BatchAcks) -> None:
        """One checkpoint per ingress partition for every batch in ``held``, whose
        outputs and audit blocks are all acknowledged; then the offsets are committed."""
        self._raise_delivery_errors()
        latest: dict[Source, tuple[int, dict[str, int], int]] = {}
        ids: dict[Source, list[str]] = {}
        for entry in held:
            for source, (next_offset, event_ids) in entry.positions.items():
                if source in self._sources:  # else lost: its next owner recovers it
                    ids.setdefault(source, []).extend(event_ids)
                    latest[source] = (next_offset, entry.ends[source], entry.now_ms)
        offsets = []
        for source, (next_offset, acknowledged, at_ms) in latest.items():
            # Ends only grow; an entry noted before an earlier write's audit blocks were
            # acknowledged lacks their end, which the last checkpoint has.
            outputs = dict(self._output_ends.get(source, {}))
            for topic, end in acknowledged.items():
                outputs[topic] = max(outputs.get(topic, 0), end)
            audited = audit_acks.ends.get(source, {})
            outputs.update(audited)
            self._acked_ends.setdefault(source, {}).update(audited)
            self._output_ends[source] = dict(outputs)
            checkpoint = Checkpoint(next_offset, outputs, tuple(ids[source]), at_ms)
            # Not waited for: the next wait (or the final flush) acknowledges it. Losing
            # it in a crash is safe: recovery falls back to the previous checkpoint and
            # finds these batches' outputs in the output tails.
            self._append(source, checkpoint)
            offsets.append(TopicPartition(source[0], source[1], checkpoint.next_offset))
        self._producer.poll(0)
        self._step("checkpointed")
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # the checkpoint is the truth; a lost commit is harmless
            log.warning("offset commit failed: %s", exc)
        self._step("committed")

    def release(self, source: Source) -> None:
        """Forget ``source``: what is held of it is dropped, not written (revoked, it
        was written first; lost, another worker may own it and write it already)."""
        super().release(source)
        self._acked_ends.pop(source, None)
        for entry in self._held:
            if entry.positions.pop(source, None) is not None:
                entry.ends.pop(source, None)
                entry.audit = [block for block in entry.audit if block.source != source]
        if self._pending is not None:
            self._pending[1][:] = [block for block in self._pending[1] if block.source != source]

    def _raise_delivery_errors(self) -> None:
        try:
            super()._raise_delivery_errors()
        except OutputsNotAcknowledgedError:
            # The worker stops; the next owner re-reads from the last checkpoint. What is
            # held or in flight must not be checkpointed over the failed outputs.
            self._failed = True
            self._pending, self._auditing, self._held = None, None, []
            raise

    def _first_position(self, source: Source, now_ms: int) -> int:
        """No checkpoint yet: mark the shared outputs so the first one knows their ends."""
        names = self._settings.names
        topic, partition = source
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
        start = self.committed_offset(source)
        self._output_ends[source] = dict(ends)
        self._append(source, Checkpoint(start, dict(ends), (), now_ms))
        self._flush()
        return start
