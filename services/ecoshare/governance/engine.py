"""The governance hot path: one batch of ingress messages in, every output out.

Pure apart from the clock and the schema look-up it is handed: the worker (I/O) feeds
it raw Kafka messages and produces what it returns. :class:`GovernanceEngine` is the
facade the worker, the dry-run and the benchmarks use; the work is split by job:

- :mod:`~ecoshare.governance.admission`: signature, framing, schema, one strict scan of
  the body (no full decode), key and partition, duplicates -> :class:`Admitted` or
  :class:`Refused`;
- :mod:`~ecoshare.governance.routing`: each candidate subscriber's agreements and
  consents, with the precedence of :func:`ecoshare.domain.policy.evaluate_event`;
- :mod:`~ecoshare.governance.rendering`: deliveries through compiled
  :class:`~ecoshare.governance.plan.DeliveryPlan`\\ s, redacted quarantine copies and
  audit blocks (encoded by :mod:`ecoshare.codec.audit_blocks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ecoshare.codec.audit_blocks import AuditBlock
from ecoshare.domain.classification import Classification
from ecoshare.domain.policy import AgreementRateLimiter
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.admission import (
    ADMISSION_FIELDS,
    UNKNOWN_PUBLISHER,
    Admission,
    Admitted,
    IngressMessage,
    NativeLayouts,
    QuarantineReason,
    Refused,
    SchemaLookup,
    WriterSchema,
    ungovernable,
)
from ecoshare.governance.batch import BatchCounts, BatchResult, PartitionBatch, bump
from ecoshare.governance.cores import select_core
from ecoshare.governance.dedup import DedupWindow
from ecoshare.governance.rendering import (
    AGREEMENT_HEADER,
    DETAIL_HEADER,
    ORIGIN_OFFSET_HEADER,
    ORIGIN_PARTITION_HEADER,
    ORIGIN_TOPIC_HEADER,
    REASON_HEADER,
    REDACTION_HEADER,
    DeliveryPlans,
    Produce,
    audit_output,
    quarantine_output,
    render_deliveries,
    source_header,
)
from ecoshare.governance.routing import BatchRouting, RouteRuntime, RouteTable

__all__ = [
    "ADMISSION_FIELDS",
    "AGREEMENT_HEADER",
    "DETAIL_HEADER",
    "ORIGIN_OFFSET_HEADER",
    "ORIGIN_PARTITION_HEADER",
    "ORIGIN_TOPIC_HEADER",
    "REASON_HEADER",
    "REDACTION_HEADER",
    "UNKNOWN_PUBLISHER",
    "Admitted",
    "BatchCounts",
    "BatchResult",
    "GovernanceEngine",
    "IngressMessage",
    "PartitionBatch",
    "Produce",
    "QuarantineReason",
    "Refused",
    "SchemaLookup",
    "WriterSchema",
]

log = logging.getLogger(__name__)


class GovernanceEngine:
    """Governs batches; keeps compiled plans, duplicate windows and rate limits."""

    def __init__(
        self,
        *,
        schemas: SchemaLookup,
        classification: Mapping[str, Mapping[str, Classification]],
        master_secret: bytes,
        delivery_topic: Callable[[str, str], str],
        audit_topic: str,
        quarantine_topic: str,
        register_delivery_schema: Callable[[str, dict[str, Any]], int],
        max_event_bytes: int,
        dedup_window_ms: int,
        dedup_capacity: int,
        ingress_partitions: Callable[[str], int],
        engine: str = "auto",
    ) -> None:
        # The compiled core (ecoshare._native) or None for the Python reference; see
        # ecoshare.governance.cores. Both govern identically (tests hold them equal).
        self._native = select_core(engine)
        self.core = "native" if self._native is not None else "python"
        native_layouts = NativeLayouts(self._native) if self._native is not None else None
        self._schemas = schemas
        self._delivery_topic = delivery_topic
        self._audit_topic = audit_topic
        self._quarantine_topic = quarantine_topic
        self.admission_checks = Admission(
            schemas=schemas,
            master_secret=master_secret,
            max_event_bytes=max_event_bytes,
            ingress_partitions=ingress_partitions,
            dedup_window_ms=dedup_window_ms,
            dedup_capacity=dedup_capacity,
            native=self._native,
            native_layouts=native_layouts,
        )
        self.plans = DeliveryPlans(
            classification=classification,
            master_secret=master_secret,
            delivery_topic=delivery_topic,
            register_delivery_schema=register_delivery_schema,
            native=self._native,
            native_layouts=native_layouts,
        )
        self._skip: dict[tuple[str, int], dict[str, set[int]]] = {}
        self.limiter = AgreementRateLimiter()
        self._route_table: RouteTable | None = None

    # -- partition life cycle -------------------------------------------------------

    def new_window(self) -> DedupWindow:
        """An empty duplicate window of this engine's core, size and duration."""
        return self.admission_checks.new_window()

    def window(self, topic: str, partition: int) -> DedupWindow:
        return self.admission_checks.window(topic, partition)

    def adopt_partition(
        self,
        topic: str,
        partition: int,
        window: DedupWindow,
        written_after_checkpoint: dict[str, set[int]],
    ) -> None:
        """Take over a partition: its rebuilt duplicate window and already-written outputs."""
        self.admission_checks.adopt_window(topic, partition, window)
        self._skip[(topic, partition)] = written_after_checkpoint

    def release_partition(self, topic: str, partition: int) -> None:
        self.admission_checks.release_window(topic, partition)
        self._skip.pop((topic, partition), None)

    def route_table(self, state: GovernanceState) -> RouteTable:
        """The routes of ``state``, derived once per governance-state snapshot."""
        if self._route_table is None or self._route_table.state is not state:
            self._route_table = RouteTable(state)
        return self._route_table

    # -- admission alone -----------------------------------------------------------

    def admission(
        self, message: IngressMessage, state: GovernanceState, now_ms: int
    ) -> Admitted | Refused:
        """The verdict admission reaches on ``message`` under ``state``, producing nothing.

        The very checks :meth:`govern` runs; an admitted event id enters the partition's
        duplicate window as in :meth:`govern`. Dry-runs replay ingress samples through
        it so that they count exactly as the workers decide.
        """
        topic = message.topic() or ""
        try:
            return self.admission_checks.admit(
                message, state, topic, message.partition() or 0, _event_type_of(topic), now_ms
            )
        except Exception as exc:  # as in govern: whatever cannot be admitted is refused
            return ungovernable(exc)

    def admission_refusal(
        self, message: IngressMessage, state: GovernanceState, now_ms: int
    ) -> tuple[QuarantineReason, str] | None:
        """Why admission would quarantine ``message`` (None: admitted); see :meth:`admission`."""
        verdict = self.admission(message, state, now_ms)
        return (verdict.reason, verdict.detail) if isinstance(verdict, Refused) else None

    # -- the batch -----------------------------------------------------------------

    def govern(
        self,
        messages: Sequence[IngressMessage],
        state: GovernanceState,
        now: datetime,
        now_ms: int,
    ) -> BatchResult:
        """Every output of ``messages`` under ``state`` at ``now`` (one clock per batch)."""
        table = self.route_table(state)
        routing = BatchRouting(table, self.plans, self._delivery_topic, self.limiter, now)
        admit = self.admission_checks.admit
        outputs: list[Produce] = []
        append_output = outputs.append
        partitions: dict[tuple[str, int], PartitionBatch] = {}
        counts = BatchCounts()
        admitted = counts.admitted
        latest = counts.latest_published_ms
        for message in messages:
            topic = message.topic() or ""
            partition = message.partition() or 0
            offset = message.offset() or 0
            source = (topic, partition)
            batch = partitions.get(source)
            if batch is None:
                batch = partitions[source] = PartitionBatch(
                    topic, partition, _event_type_of(topic), offset, offset + 1
                )
                batch.source_header = source_header(source)
                batch.skip = self._skip.get(source)
            batch.next_offset = offset + 1
            try:
                verdict = admit(message, state, topic, partition, batch.event_type, now_ms)
            except Exception as exc:  # no input may stop a partition: refuse it, move on
                log.exception("admission failed at %s:%s@%s", topic, partition, offset)
                verdict = ungovernable(exc)
            if isinstance(verdict, Refused):
                self._refuse(batch, counts, table, message, offset, verdict, outputs)
                continue
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
            mark = len(outputs)
            runtimes: tuple[RouteRuntime, ...] | None = None
            try:
                runtimes = routing.runtimes(verdict.writer, verdict.publisher)
                deliveries = routing.decide(runtimes, verdict, row, ingested_ms)
                if deliveries:
                    render_deliveries(batch, offset, verdict, deliveries, append_output)
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
                self._refuse(batch, counts, table, message, offset, refused, outputs)
                continue
            admitted_key = (publisher_id, verdict.writer.event_type)
            admitted[admitted_key] = admitted.get(admitted_key, 0) + 1
            if verdict.published_ms > latest.get(admitted_key, 0):
                latest[admitted_key] = verdict.published_ms
            batch.audit_events.append(row)
        routing.add_counts(counts)
        for batch in partitions.values():
            audit = self._audit(batch, routing.templates, state, now_ms)
            if audit is not None:
                outputs.append(audit)
        return BatchResult(outputs, partitions, counts, routing.templates)

    def _refuse(
        self,
        batch: PartitionBatch,
        counts: BatchCounts,
        table: RouteTable,
        message: IngressMessage,
        offset: int,
        refused: Refused,
        outputs: list[Produce],
    ) -> None:
        """Quarantine a refused event: its copy, audit row and the counts of every
        candidate subscriber."""
        publisher_id = refused.publisher_id
        batch.audit_quarantined.append(
            [offset, refused.event_id, refused.reason.value, refused.detail, publisher_id]
        )
        bump(counts.quarantined, (batch.event_type, refused.reason.value))
        bump(counts.quarantined_publishers, (publisher_id or UNKNOWN_PUBLISHER, batch.event_type))
        for route in table.routes(batch.event_type, publisher_id or ""):
            bump(counts.subscriber_quarantined, (route.subscriber_id, batch.event_type))
            bump(counts.subscriber_received, (route.subscriber_id, batch.event_type))
        if not batch.written(self._quarantine_topic, offset):
            outputs.append(
                quarantine_output(
                    self._quarantine_topic,
                    message.key(),
                    message.value(),
                    batch.source,
                    offset,
                    refused,
                    self._schemas,
                )
            )

    def _audit(
        self,
        batch: PartitionBatch,
        templates: list[dict[str, Any]],
        state: GovernanceState,
        now_ms: int,
    ) -> Produce | None:
        """The audit block of one partition's batch (None: nothing left to audit)."""
        events, quarantined = batch.audit_events, batch.audit_quarantined
        audited = batch.skip.get(self._audit_topic) if batch.skip else None
        if audited:
            # A worker that died after writing these rows' block already audited them.
            events = [row for row in events if row[0] not in audited]
            quarantined = [row for row in quarantined if row[0] not in audited]
        if not events and not quarantined:
            return None
        block = AuditBlock(
            source=f"{batch.topic}:{batch.partition}",
            event_type=batch.event_type,
            state_version=state.version,
            at_ms=now_ms,
            candidates=tuple(state.candidate_subscribers(batch.event_type)),
            templates=templates,
            events=events,
            quarantined=quarantined,
        )
        return audit_output(
            self._audit_topic,
            block,
            batch.source,
            (batch.first_offset, batch.next_offset - 1),
            self._native,
        )


def _event_type_of(topic: str) -> str:
    return topic.rsplit(".", 1)[-1]
