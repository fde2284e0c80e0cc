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
from ecoshare.governance.batch import BatchCounts, BatchResult, PartitionBatch
from ecoshare.governance.batch_run import BatchRun, event_type_of
from ecoshare.governance.cores import select_core
from ecoshare.governance.dedup import DedupWindow
from ecoshare.governance.kernel import ConsentMemo, KernelRun
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
)
from ecoshare.governance.routing import RouteTable

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
        self.native = self._native
        self.schemas = schemas
        self.delivery_topic = delivery_topic
        self.audit_topic = audit_topic
        self.quarantine_topic = quarantine_topic
        self.ingress_partitions = ingress_partitions
        self.max_event_bytes = max_event_bytes
        self.native_layouts = native_layouts
        # The compiled batch kernel (native core only): the common case of every event
        # natively, anything else through the Python path, in place. Turned off, the
        # native core governs event by event (tests and the bench compare the two).
        self.batch_kernel = self._native is not None and hasattr(self._native, "govern_batch")
        self.consent_memo = ConsentMemo()
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
                message, state, topic, message.partition() or 0, event_type_of(topic), now_ms
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

    def skip_of(self, source: tuple[str, int]) -> dict[str, set[int]] | None:
        """The outputs of ``source`` already written after its checkpoint (recovery)."""
        return self._skip.get(source)

    def govern(
        self,
        messages: Sequence[IngressMessage],
        state: GovernanceState,
        now: datetime,
        now_ms: int,
    ) -> BatchResult:
        """Every output of ``messages`` under ``state`` at ``now`` (one clock per batch).

        With the native core the compiled kernel walks the batch, handing each event it
        does not take itself to the Python path in place (see
        :mod:`ecoshare.governance.kernel`); both write identical results.
        """
        if self.batch_kernel:
            run: BatchRun = KernelRun(self, state, now, now_ms)
            self._native.govern_batch(run, messages)  # type: ignore[union-attr]
            return run.finish()
        run = BatchRun(self, state, now, now_ms)
        govern_event = run.govern_event
        for message in messages:
            govern_event(message)
        return run.finish()
