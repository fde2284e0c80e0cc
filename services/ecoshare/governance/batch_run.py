"""One batch being governed: its clock, routing, outputs and bookkeeping, event by event.

:meth:`BatchRun.govern_event` is the per-event path of the Python core (admission,
routing, rendering, quarantine); the compiled kernel (:mod:`ecoshare.governance.kernel`)
takes the common case natively and hands every other event to that same method, in
place, so both cores write the same outputs in the same order.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ecoshare.codec.audit_blocks import AuditBlock
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.admission import UNKNOWN_PUBLISHER, IngressMessage, Refused, ungovernable
from ecoshare.governance.batch import BatchCounts, BatchResult, PartitionBatch, bump
from ecoshare.governance.rendering import (
    Produce,
    audit_output,
    quarantine_output,
    render_deliveries,
    source_header,
)
from ecoshare.governance.routing import BatchRouting, RouteRuntime

if TYPE_CHECKING:  # the engine builds runs; a run reads the engine's settings
    from ecoshare.governance.engine import GovernanceEngine

log = logging.getLogger(__name__)


class BatchRun:
    """What governing one batch accumulates, and the per-event Python path."""

    def __init__(
        self, engine: GovernanceEngine, state: GovernanceState, now: datetime, now_ms: int
    ) -> None:
        self.engine = engine
        self.state = state
        self.now = now
        self.now_ms = now_ms
        self.table = engine.route_table(state)
        self.routing = BatchRouting(
            self.table, engine.plans, engine.delivery_topic, engine.limiter, now
        )
        self.outputs: list[Produce] = []
        self.partitions: dict[tuple[str, int], PartitionBatch] = {}
        self.counts = BatchCounts()

    def partition_batch(self, topic: str, partition: int, offset: int) -> PartitionBatch:
        """The bookkeeping of ``topic``/``partition`` in this batch (opened at ``offset``)."""
        source = (topic, partition)
        batch = self.partitions.get(source)
        if batch is None:
            batch = self.partitions[source] = PartitionBatch(
                topic, partition, event_type_of(topic), offset, offset + 1
            )
            batch.source_header = source_header(source)
            batch.skip = self.engine.skip_of(source)
        return batch

    def govern_event(self, message: IngressMessage) -> None:
        """Admit, route and render one message (or quarantine it), in place."""
        topic = message.topic() or ""
        partition = message.partition() or 0
        offset = message.offset() or 0
        batch = self.partition_batch(topic, partition, offset)
        batch.next_offset = offset + 1
        now_ms = self.now_ms
        try:
            verdict = self.engine.admission_checks.admit(
                message, self.state, topic, partition, batch.event_type, now_ms
            )
        except Exception as exc:  # no input may stop a partition: refuse it, move on
            log.exception("admission failed at %s:%s@%s", topic, partition, offset)
            verdict = ungovernable(exc)
        if isinstance(verdict, Refused):
            self.refuse(batch, message, offset, verdict)
            return
        event_id = verdict.event_id
        publisher_id = verdict.publisher_id
        # The broker's timestamp of the ingress record: the platform's own ingest
        # time (LogAppendTime on the ingress topics), unlike the publisher's clock.
        ingested_ms = message.timestamp()[1]
        batch.new_event_ids.append(event_id)
        row: list[Any] = [
            offset,
            event_id,
            publisher_id,
            verdict.location_id,
            verdict.published_ms,
        ]
        outputs = self.outputs
        mark = len(outputs)
        routing = self.routing
        runtimes: tuple[RouteRuntime, ...] | None = None
        try:
            runtimes = routing.runtimes(verdict.writer, verdict.publisher)
            deliveries = routing.decide(runtimes, verdict, row, ingested_ms)
            if deliveries:
                render_deliveries(batch, offset, verdict, deliveries, outputs.append)
        except Exception as exc:  # no input may stop a partition: refuse it, move on
            log.exception("governing failed at %s:%s@%s", topic, partition, offset)
            del outputs[mark:]
            # The id stays in the duplicate window (and the checkpoint): a copy is a
            # duplicate, and would fail the same way.
            routing.undo(runtimes, row)
            refused = ungovernable(
                exc,
                event_id=event_id,
                publisher_id=publisher_id,
                writer=verdict.writer,
                offsets=verdict.offsets,
            )
            self.refuse(batch, message, offset, refused)
            return
        counts = self.counts
        admitted_key = (publisher_id, verdict.writer.event_type)
        counts.admitted[admitted_key] = counts.admitted.get(admitted_key, 0) + 1
        latest = counts.latest_published_ms
        if verdict.published_ms > latest.get(admitted_key, 0):
            latest[admitted_key] = verdict.published_ms
        batch.audit_events.append(row)

    def refuse(
        self, batch: PartitionBatch, message: IngressMessage, offset: int, refused: Refused
    ) -> None:
        """Quarantine a refused event: its copy, audit row and the counts of every
        candidate subscriber."""
        counts = self.counts
        publisher_id = refused.publisher_id
        batch.audit_quarantined.append(
            [offset, refused.event_id, refused.reason.value, refused.detail, publisher_id]
        )
        bump(counts.quarantined, (batch.event_type, refused.reason.value))
        bump(counts.quarantined_publishers, (publisher_id or UNKNOWN_PUBLISHER, batch.event_type))
        for route in self.table.routes(batch.event_type, publisher_id or ""):
            bump(counts.subscriber_quarantined, (route.subscriber_id, batch.event_type))
            bump(counts.subscriber_received, (route.subscriber_id, batch.event_type))
        engine = self.engine
        if not batch.written(engine.quarantine_topic, offset):
            self.outputs.append(
                quarantine_output(
                    engine.quarantine_topic,
                    message.key(),
                    message.value(),
                    batch.source,
                    offset,
                    refused,
                    engine.schemas,
                )
            )

    def finish(self) -> BatchResult:
        """The batch's result: counts gathered, one audit block per partition."""
        routing = self.routing
        routing.add_counts(self.counts)
        for batch in self.partitions.values():
            audit = self.audit(batch, routing.templates)
            if audit is not None:
                self.outputs.append(audit)
        return BatchResult(self.outputs, self.partitions, self.counts, routing.templates)

    def audit(self, batch: PartitionBatch, templates: list[dict[str, Any]]) -> Produce | None:
        """The audit block of one partition's batch (None: nothing left to audit)."""
        engine = self.engine
        events, quarantined = batch.audit_events, batch.audit_quarantined
        audited = batch.skip.get(engine.audit_topic) if batch.skip else None
        if audited:
            # A worker that died after writing these rows' block already audited them.
            events = [row for row in events if row[0] not in audited]
            quarantined = [row for row in quarantined if row[0] not in audited]
        if not events and not quarantined:
            return None
        state = self.state
        block = AuditBlock(
            source=f"{batch.topic}:{batch.partition}",
            event_type=batch.event_type,
            state_version=state.version,
            at_ms=self.now_ms,
            candidates=tuple(state.candidate_subscribers(batch.event_type)),
            templates=templates,
            events=events,
            quarantined=quarantined,
        )
        return audit_output(
            engine.audit_topic,
            block,
            batch.source,
            (batch.first_offset, batch.next_offset - 1),
            engine.native,
        )


def event_type_of(topic: str) -> str:
    return topic.rsplit(".", 1)[-1]
