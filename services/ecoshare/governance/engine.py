"""The governance hot path: one batch of ingress messages in, every output out.

Pure apart from the clock and the schema look-up it is handed: the worker (I/O) feeds
it raw Kafka messages and produces what it returns. Per event it verifies the
publisher's signature, checks the framing and schema, scans the body once (no full
decode), drops duplicates, evaluates every candidate subscriber's agreements and
consents with the same precedence as :func:`ecoshare.domain.policy.evaluate_event`,
and renders each delivery with a compiled :class:`~ecoshare.governance.plan.DeliveryPlan`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from ecoshare.codec.errors import CodecError
from ecoshare.codec.layout import RecordLayout, compile_layout, encode_long
from ecoshare.codec.wire import header_for
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.classification import Classification
from ecoshare.domain.identity import (
    PUBLISHER_HEADER,
    SIGNATURE_HEADER,
    partner_signing_key,
    sign_event,
)
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.policy import AgreementRateLimiter, WithholdReason
from ecoshare.domain.projection import subscriber_hash_key
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.cores import select_core
from ecoshare.governance.dedup import DedupWindow
from ecoshare.governance.partitioning import key_partition
from ecoshare.governance.plan import DeliveryPlan, RowPredicate, compile_plan, row_filter_ops
from ecoshare.governance.progress import (
    EVENT_ID_HEADER,
    SOURCE_HEADER,
    SOURCE_OFFSETS_HEADER,
)

log = logging.getLogger(__name__)
AGREEMENT_HEADER = "ecoshare-agreement"
REASON_HEADER = "ecoshare-reason"
DETAIL_HEADER = "ecoshare-detail"
ORIGIN_TOPIC_HEADER = "ecoshare-original-topic"
ORIGIN_PARTITION_HEADER = "ecoshare-original-partition"
ORIGIN_OFFSET_HEADER = "ecoshare-original-offset"
REDACTION_HEADER = "ecoshare-redaction"


# The publisher label of a quarantined message whose sender could not be authenticated.
UNKNOWN_PUBLISHER = "unknown"


class QuarantineReason(StrEnum):
    """Why an ingress message was refused; carried in the quarantine reason header."""

    EMPTY_VALUE = "empty_value"
    OVERSIZE_EVENT = "oversize_event"
    UNAUTHENTICATED_PUBLISHER = "unauthenticated_publisher"
    PUBLISHER_NOT_ALLOWED = "publisher_not_allowed"
    BAD_FRAMING = "bad_framing"
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    SCHEMA_NOT_FOR_TOPIC = "schema_not_for_topic"
    TRUNCATED_PAYLOAD = "truncated_payload"
    TRAILING_BYTES = "trailing_bytes"
    INVALID_VALUE = "invalid_value"
    UNDECODABLE_PAYLOAD = "undecodable_payload"
    DUPLICATE_EVENT_ID = "duplicate_event_id"
    KEY_NOT_LOCATION = "key_not_location"
    WRONG_PARTITION = "wrong_partition"
    UNGOVERNABLE_EVENT = "ungovernable_event"


class IngressMessage(Protocol):
    """The parts of a confluent-kafka Message the engine reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...
    def timestamp(self) -> tuple[int, int]: ...


ADMISSION_FIELDS = ("event_id", "publisher_id", "location_id", "published_at", "contact_subject_id")
"""Envelope fields every event needs; the scanner decodes them in passing."""


@dataclass(frozen=True)
class WriterSchema:
    """A registered writer schema of an ingress topic, compiled."""

    schema_id: int
    event_type: str
    schema: dict[str, Any]
    layout: RecordLayout

    @classmethod
    def compile(cls, schema_id: int, event_type: str, schema: dict[str, Any]) -> WriterSchema:
        return cls(schema_id, event_type, schema, compile_layout(schema, ADMISSION_FIELDS))


class SchemaLookup(Protocol):
    """Resolves (ingress topic, schema id) to the compiled writer schema."""

    def writer(self, topic: str, schema_id: int) -> WriterSchema | None: ...

    def by_id(self, schema_id: int) -> WriterSchema | None: ...

    def subject_of(self, schema_id: int) -> str | None: ...


@dataclass(slots=True)
class Produce:
    """One record to produce, to an explicit partition."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(slots=True)
class PartitionBatch:
    """Outputs and bookkeeping of one ingress partition within a batch."""

    topic: str
    partition: int
    event_type: str
    first_offset: int
    next_offset: int
    new_event_ids: list[str] = field(default_factory=list)
    audit_events: list[list[Any]] = field(default_factory=list)
    audit_quarantined: list[list[Any]] = field(default_factory=list)
    source_header: tuple[str, bytes] = ("", b"")
    skip: dict[str, set[int]] | None = None


@dataclass
class BatchCounts:
    """What a batch did, for metrics: label tuples to counts.

    ``admitted`` and ``quarantined_publishers`` are keyed (publisher, event type) and
    together count every ingress message once; a quarantined message whose publisher
    was not authenticated counts under :data:`UNKNOWN_PUBLISHER`.
    ``delivered_ingested_ms`` holds, per subscriber, the ingress record's broker
    timestamp of each delivered event (0 when the broker gave none).
    """

    admitted: dict[tuple[str, str], int] = field(default_factory=dict)
    delivered: dict[tuple[str, str], int] = field(default_factory=dict)
    withheld: dict[tuple[str, str, str], int] = field(default_factory=dict)
    quarantined: dict[tuple[str, str], int] = field(default_factory=dict)
    quarantined_publishers: dict[tuple[str, str], int] = field(default_factory=dict)
    subscriber_received: dict[tuple[str, str], int] = field(default_factory=dict)
    subscriber_quarantined: dict[tuple[str, str], int] = field(default_factory=dict)
    latest_published_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    delivered_ingested_ms: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class BatchResult:
    outputs: list[Produce]
    partitions: dict[tuple[str, int], PartitionBatch]
    counts: BatchCounts
    templates: list[dict[str, Any]]


def _bump(counter: dict[Any, int], key: Any, amount: int = 1) -> None:
    counter[key] = counter.get(key, 0) + amount


@dataclass(frozen=True)
class _Route:
    subscriber_id: str
    subscriber_enabled: bool
    covering: tuple[Agreement, ...]


class CompiledState:
    """Look-ups the hot path needs, derived once per governance-state snapshot."""

    def __init__(self, state: GovernanceState, master_secret: bytes) -> None:
        self.state = state
        self._master_secret = master_secret
        self._routes: dict[tuple[str, str], tuple[_Route, ...]] = {}
        self._signing_keys: dict[str, bytes] = {}

    def routes(self, event_type: str, publisher_id: str) -> tuple[_Route, ...]:
        key = (event_type, publisher_id)
        found = self._routes.get(key)
        if found is None:
            state = self.state
            routes = []
            for subscriber_id in state.candidate_subscribers(event_type):
                subscriber = state.partner(subscriber_id)
                routes.append(
                    _Route(
                        subscriber_id,
                        subscriber is not None and subscriber.enabled,
                        tuple(state.agreements_for(publisher_id, subscriber_id, event_type)),
                    )
                )
            found = self._routes[key] = tuple(routes)
        return found

    def signing_key(self, partner: Partner) -> bytes:
        key = self._signing_keys.get(partner.partner_id)
        if key is None:
            key = partner_signing_key(
                self._master_secret, partner.partner_id, partner.key_generation
            )
            self._signing_keys[partner.partner_id] = key
        return key


@dataclass(slots=True)
class _Candidate:
    """An agreement in force for a route, compiled for the batch's writer schema."""

    agreement: Agreement
    plan: DeliveryPlan
    frame_header: bytes
    predicate: RowPredicate | None
    agreement_header: tuple[str, bytes]
    native_plan: Any = None  # ecoshare._native.Plan of the same plan, with the native core


@dataclass(slots=True)
class _RouteRuntime:
    """One subscriber's route during one batch: its fixed outcome or its candidates,
    and its counts (kept here, not in shared dicts, to keep the per-event path short)."""

    subscriber_id: str
    event_type: str = ""
    static_reason: WithholdReason | None = None
    static_closest: Agreement | None = None
    in_force_first: Agreement | None = None
    refused: Agreement | None = None
    topic: str = ""
    candidates: list[_Candidate] = field(default_factory=list)
    received: int = 0
    delivered: int = 0
    withheld: dict[str, int] = field(default_factory=dict)
    delivered_ingested_ms: list[int] = field(default_factory=list)
    _withheld_templates: dict[tuple[str, str | None], int] = field(default_factory=dict)
    _delivered_templates: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)

    def withhold(self, reason: WithholdReason, closest: tuple[Agreement, ...]) -> None:
        self.static_reason = reason
        self.static_closest = closest[0] if closest else None

    def count_withheld(self, reason: WithholdReason) -> None:
        value = reason.value
        self.withheld[value] = self.withheld.get(value, 0) + 1

    def _closest(self, reason: WithholdReason) -> Agreement | None:
        if reason is WithholdReason.DELIVERY_SCHEMA_REFUSED:
            return self.refused
        if reason is WithholdReason.ROW_FILTER:
            return self.in_force_first
        return self.static_closest

    def withheld_template(
        self,
        template: Callable[[tuple[Any, ...], Callable[[], dict[str, Any]]], int],
        reason: WithholdReason,
        agreement: Agreement | None = None,
    ) -> int:
        closest = agreement or self._closest(reason)
        key = (reason.value, closest.agreement_id if closest else None)
        found = self._withheld_templates.get(key)
        if found is None:
            found = self._withheld_templates[key] = template(
                (self.subscriber_id, *key, closest.version if closest else None),
                lambda: {
                    "subscriber": self.subscriber_id,
                    "outcome": "withheld",
                    "reason": reason.value,
                    "agreement_id": closest.agreement_id if closest else None,
                    "agreement_version": closest.version if closest else None,
                },
            )
        return found

    def delivered_template(
        self,
        template: Callable[[tuple[Any, ...], Callable[[], dict[str, Any]]], int],
        candidate: _Candidate,
        missing: tuple[str, ...],
    ) -> int:
        agreement = candidate.agreement
        key = (agreement.agreement_id, missing)
        found = self._delivered_templates.get(key)
        if found is None:
            found = self._delivered_templates[key] = template(
                (
                    self.subscriber_id,
                    "delivered",
                    agreement.agreement_id,
                    agreement.version,
                    missing,
                ),
                lambda: _delivered_template(self.subscriber_id, agreement, candidate.plan, missing),
            )
        return found

    def add_to(self, counts: BatchCounts, event_type: str) -> None:
        if not self.received:
            return
        subscriber = self.subscriber_id
        _bump(counts.subscriber_received, (subscriber, event_type), self.received)
        if self.delivered:
            _bump(counts.delivered, (subscriber, event_type), self.delivered)
            counts.delivered_ingested_ms.setdefault(subscriber, []).extend(
                self.delivered_ingested_ms
            )
        for reason, count in self.withheld.items():
            _bump(counts.withheld, (subscriber, event_type, reason), count)


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
        self._native_layouts: dict[int, Any] = {}
        self._native_plans: dict[int, tuple[DeliveryPlan, Any]] = {}
        self._native_filters: dict[tuple[int, int], tuple[DeliveryPlan, Any]] = {}
        self._schemas = schemas
        self._ingress_partitions = ingress_partitions
        self._classification = classification
        self._master_secret = master_secret
        self._delivery_topic = delivery_topic
        self._audit_topic = audit_topic
        self._quarantine_topic = quarantine_topic
        self._register = register_delivery_schema
        self._max_event_bytes = max_event_bytes
        self._dedup_window_ms = dedup_window_ms
        self._dedup_capacity = dedup_capacity
        self._plans: dict[tuple[str, int, int], tuple[DeliveryPlan, bytes] | str] = {}
        self._hash_keys: dict[str, bytes] = {}
        self._windows: dict[tuple[str, int], DedupWindow] = {}
        self._skip: dict[tuple[str, int], dict[str, set[int]]] = {}
        self.limiter = AgreementRateLimiter()
        self._compiled: CompiledState | None = None

    # -- partition life cycle -------------------------------------------------------

    def new_window(self) -> DedupWindow:
        """An empty duplicate window of this engine's core, size and duration."""
        if self._native is not None:
            window: DedupWindow = self._native.DedupWindow(
                self._dedup_window_ms, self._dedup_capacity
            )
            return window
        return DedupWindow(self._dedup_window_ms, self._dedup_capacity)

    def window(self, topic: str, partition: int) -> DedupWindow:
        key = (topic, partition)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self.new_window()
        return window

    def adopt_partition(
        self,
        topic: str,
        partition: int,
        window: DedupWindow,
        written_after_checkpoint: dict[str, set[int]],
    ) -> None:
        """Take over a partition: its rebuilt duplicate window and already-written outputs."""
        self._windows[(topic, partition)] = window
        self._skip[(topic, partition)] = written_after_checkpoint

    def release_partition(self, topic: str, partition: int) -> None:
        self._windows.pop((topic, partition), None)
        self._skip.pop((topic, partition), None)

    # -- compilation ---------------------------------------------------------------

    def compiled(self, state: GovernanceState) -> CompiledState:
        if self._compiled is None or self._compiled.state is not state:
            self._compiled = CompiledState(state, self._master_secret)
        return self._compiled

    def hash_key(self, subscriber_id: str) -> bytes:
        key = self._hash_keys.get(subscriber_id)
        if key is None:
            key = self._hash_keys[subscriber_id] = subscriber_hash_key(
                self._master_secret, subscriber_id
            )
        return key

    def plan(self, agreement: Agreement, writer: WriterSchema) -> tuple[DeliveryPlan, bytes] | str:
        """The compiled plan and framed-header prefix, or an error text if unregistrable."""
        key = (agreement.agreement_id, agreement.version, writer.schema_id)
        found = self._plans.get(key)
        if found is None:
            topic = self._delivery_topic(agreement.subscriber, writer.event_type)
            try:
                plan = compile_plan(
                    writer.layout,
                    writer.schema,
                    agreement,
                    self._classification[writer.event_type],
                    self.hash_key(agreement.subscriber),
                )
                schema_id = self._register(topic, plan.schema)
                found = (plan, header_for(schema_id))
            except Exception as exc:  # a rule that does not fit, or the registry's refusal
                found = (
                    f"agreement {agreement.agreement_id} v{agreement.version}: delivery "
                    f"schema for {topic} refused: {exc}"
                )
                log.error("%s; its events are withheld as delivery_schema_refused", found)
            self._plans[key] = found
        return found

    # -- the batch -----------------------------------------------------------------

    def _runtimes(
        self,
        compiled: CompiledState,
        writer: WriterSchema,
        publisher: Partner,
        now: datetime,
        batch_cache: dict[tuple[int, str], tuple[_RouteRuntime, ...]],
    ) -> tuple[_RouteRuntime, ...]:
        """What each candidate subscriber's route does for events of this batch.

        Validity is decided once per batch (one clock per batch), so per event only
        row filters, rate limits and consent remain to be evaluated.
        """
        key = (writer.schema_id, publisher.partner_id)
        found = batch_cache.get(key)
        if found is not None:
            return found
        runtimes = []
        for route in compiled.routes(writer.event_type, publisher.partner_id):
            runtime = _RouteRuntime(route.subscriber_id, writer.event_type)
            if not publisher.enabled:
                runtime.withhold(WithholdReason.PUBLISHER_DISABLED, route.covering[:1])
            elif not route.subscriber_enabled:
                runtime.withhold(WithholdReason.SUBSCRIBER_DISABLED, route.covering[:1])
            elif not route.covering:
                runtime.withhold(WithholdReason.NO_AGREEMENT, ())
            else:
                in_force = tuple(a for a in route.covering if a.is_in_force(now))
                if not in_force:
                    runtime.withhold(WithholdReason.AGREEMENT_NOT_IN_FORCE, route.covering[:1])
                else:
                    runtime.in_force_first = in_force[0]
                    topic = self._delivery_topic(route.subscriber_id, writer.event_type)
                    runtime.topic = topic
                    for agreement in in_force:
                        compiled_plan = self.plan(agreement, writer)
                        if isinstance(compiled_plan, str):
                            runtime.refused = runtime.refused or agreement
                            continue
                        plan, frame_header = compiled_plan
                        runtime.candidates.append(
                            _Candidate(
                                agreement,
                                plan,
                                frame_header,
                                self._row_filter(plan, writer),
                                (
                                    AGREEMENT_HEADER,
                                    f"{agreement.agreement_id}:{agreement.version}".encode(),
                                ),
                                self._native_plan(plan),
                            )
                        )
            runtimes.append(runtime)
        found = batch_cache[key] = tuple(runtimes)
        return found

    def govern(
        self,
        messages: Sequence[IngressMessage],
        state: GovernanceState,
        now: datetime,
        now_ms: int,
    ) -> BatchResult:
        """Every output of ``messages`` under ``state`` at ``now`` (one clock per batch)."""
        compiled = self.compiled(state)
        outputs: list[Produce] = []
        append_output = outputs.append
        partitions: dict[tuple[str, int], PartitionBatch] = {}
        counts = BatchCounts()
        templates: list[dict[str, Any]] = []
        template_ids: dict[tuple[Any, ...], int] = {}
        batch_cache: dict[tuple[int, str], tuple[_RouteRuntime, ...]] = {}
        limiter = self.limiter
        admitted = counts.admitted
        latest = counts.latest_published_ms
        no_consent: frozenset[str] = frozenset()

        def template(key: tuple[Any, ...], build: Callable[[], dict[str, Any]]) -> int:
            found = template_ids.get(key)
            if found is None:
                found = template_ids[key] = len(templates)
                templates.append(build())
            return found

        for message in messages:
            topic = message.topic() or ""
            partition = message.partition() or 0
            offset = message.offset() or 0
            source = (topic, partition)
            batch = partitions.get(source)
            if batch is None:
                batch = partitions[source] = PartitionBatch(
                    topic, partition, self._event_type_of(topic), offset, offset + 1
                )
                batch.source_header = (SOURCE_HEADER, f"{topic}:{partition}".encode())
                batch.skip = self._skip.get(source)
            batch.next_offset = offset + 1
            skip = batch.skip
            try:
                verdict = self._admit(message, compiled, batch, now_ms)
            except Exception as exc:  # no input may stop a partition: refuse it, move on
                log.exception("admission failed at %s:%s@%s", topic, partition, offset)
                verdict = (QuarantineReason.UNGOVERNABLE_EVENT, _failure(exc), None, None, None)
            if len(verdict) == 5:
                reason, detail, event_id, publisher_id, redacted = verdict
                self._refuse(
                    batch, counts, compiled, message, reason, detail, event_id, publisher_id
                )
                if skip is None or offset not in skip.get(self._quarantine_topic, ()):
                    append_output(
                        self._quarantine(
                            message, topic, partition, offset, reason, detail, redacted
                        )
                    )
                continue
            writer, body, offsets, envelope, publisher_id, publisher = verdict
            event_id, _, location_id, published_ms, event_subject = envelope
            published_ms = published_ms or 0
            # The broker's timestamp of the ingress record: the platform's own ingest
            # time (LogAppendTime on the ingress topics), unlike the publisher's clock.
            ingested_ms = message.timestamp()[1]
            batch.new_event_ids.append(event_id)
            row: list[Any] = [offset, event_id, publisher_id, location_id, published_ms]
            key = location_id.encode()
            event_headers: tuple[tuple[str, bytes], ...] | None = None
            mark = len(outputs)
            runtimes: tuple[_RouteRuntime, ...] | None = None
            try:
                runtimes = self._runtimes(compiled, writer, publisher, now, batch_cache)
                for runtime in runtimes:
                    runtime.received += 1
                    if runtime.static_reason is not None:
                        runtime.count_withheld(runtime.static_reason)
                        row.append([runtime.withheld_template(template, runtime.static_reason)])
                        continue
                    chosen: _Candidate | None = None
                    for candidate in runtime.candidates:
                        predicate = candidate.predicate
                        if predicate is None or predicate(body, offsets):
                            chosen = candidate
                            break
                    if chosen is None:
                        reason_code = (
                            WithholdReason.DELIVERY_SCHEMA_REFUSED
                            if runtime.refused is not None
                            else WithholdReason.ROW_FILTER
                        )
                        runtime.count_withheld(reason_code)
                        row.append([runtime.withheld_template(template, reason_code)])
                        continue
                    agreement = chosen.agreement
                    if agreement.limits is not None and not limiter.try_acquire(
                        agreement.agreement_id, agreement.limits, now
                    ):
                        runtime.count_withheld(WithholdReason.RATE_LIMITED)
                        row.append(
                            [
                                runtime.withheld_template(
                                    template, WithholdReason.RATE_LIMITED, agreement
                                )
                            ]
                        )
                        continue
                    plan = chosen.plan
                    allowed = no_consent
                    consent_ids: list[str] = []
                    if plan.personal_fields and event_subject:
                        allowed, consent_ids = _consented_fields(
                            state, plan, event_subject, publisher_id, runtime.subscriber_id, now
                        )
                    if skip is None or offset not in skip.get(runtime.topic, ()):
                        if event_headers is None:
                            event_headers = (
                                (EVENT_ID_HEADER, event_id.encode()),
                                batch.source_header,
                                (SOURCE_OFFSETS_HEADER, str(offset).encode()),
                            )
                        native_plan = chosen.native_plan
                        append_output(
                            Produce(
                                runtime.topic,
                                partition,
                                key,
                                native_plan.render(chosen.frame_header, body, offsets, allowed)
                                if native_plan is not None
                                else chosen.frame_header + plan.render(body, offsets, allowed),
                                [*event_headers, chosen.agreement_header],
                            )
                        )
                    missing = (
                        tuple(name for name in plan.personal_fields if name not in allowed)
                        if plan.personal_fields
                        else ()
                    )
                    entry: list[Any] = [runtime.delivered_template(template, chosen, missing)]
                    if consent_ids:
                        entry.append(consent_ids)
                    row.append(entry)
                    runtime.delivered += 1
                    runtime.delivered_ingested_ms.append(ingested_ms)
            except Exception as exc:  # no input may stop a partition: refuse it, move on
                log.exception("governing failed at %s:%s@%s", topic, partition, offset)
                del outputs[mark:]
                # The id stays in the duplicate window (and the checkpoint): a copy is a
                # duplicate, and would fail the same way.
                _undo_decisions(runtimes, row, templates)
                detail = _failure(exc)
                reason = QuarantineReason.UNGOVERNABLE_EVENT
                self._refuse(
                    batch, counts, compiled, message, reason, detail, event_id, publisher_id
                )
                if skip is None or offset not in skip.get(self._quarantine_topic, ()):
                    append_output(
                        self._quarantine(
                            message,
                            topic,
                            partition,
                            offset,
                            reason,
                            detail,
                            _redact(body, writer, offsets),
                        )
                    )
                continue
            admitted_key = (publisher_id, writer.event_type)
            admitted[admitted_key] = admitted.get(admitted_key, 0) + 1
            if published_ms > latest.get(admitted_key, 0):
                latest[admitted_key] = published_ms
            batch.audit_events.append(row)
        for runtimes in batch_cache.values():
            for runtime in runtimes:
                runtime.add_to(counts, runtime.event_type)
        for batch in partitions.values():
            audited = batch.skip.get(self._audit_topic) if batch.skip else None
            if audited:
                # A worker that died after writing these rows' block already audited them.
                batch.audit_events = [r for r in batch.audit_events if r[0] not in audited]
                batch.audit_quarantined = [
                    r for r in batch.audit_quarantined if r[0] not in audited
                ]
            if batch.audit_events or batch.audit_quarantined:
                outputs.append(self._audit_block(batch, templates, state, now_ms))
        return BatchResult(outputs, partitions, counts, templates)

    def _refuse(
        self,
        batch: PartitionBatch,
        counts: BatchCounts,
        compiled: CompiledState,
        message: IngressMessage,
        reason: QuarantineReason,
        detail: str,
        event_id: str | None,
        publisher_id: str | None,
    ) -> None:
        """Account for a quarantined event: audit row and counts of every candidate."""
        batch.audit_quarantined.append(
            [message.offset() or 0, event_id, reason.value, detail, publisher_id]
        )
        _bump(counts.quarantined, (batch.event_type, reason.value))
        _bump(counts.quarantined_publishers, (publisher_id or UNKNOWN_PUBLISHER, batch.event_type))
        for route in compiled.routes(batch.event_type, publisher_id or ""):
            _bump(counts.subscriber_quarantined, (route.subscriber_id, batch.event_type))
            _bump(counts.subscriber_received, (route.subscriber_id, batch.event_type))

    # -- admission -----------------------------------------------------------------

    def admission_refusal(
        self, message: IngressMessage, state: GovernanceState, now_ms: int
    ) -> tuple[QuarantineReason, str] | None:
        """Why admission would quarantine ``message`` under ``state`` (None: admitted).

        The very checks :meth:`govern` runs, producing nothing; an admitted event id
        enters the partition's duplicate window as in :meth:`govern`. Dry-runs replay
        ingress samples through it so that they count exactly as the workers decide.
        """
        topic = message.topic() or ""
        offset = message.offset() or 0
        batch = PartitionBatch(
            topic, message.partition() or 0, self._event_type_of(topic), offset, offset + 1
        )
        try:
            verdict = self._admit(message, self.compiled(state), batch, now_ms)
        except Exception as exc:  # as in govern: whatever cannot be admitted is refused
            return (QuarantineReason.UNGOVERNABLE_EVENT, _failure(exc))
        if len(verdict) == 5:
            return (verdict[0], verdict[1])
        return None

    def _event_type_of(self, topic: str) -> str:
        return topic.rsplit(".", 1)[-1]

    def _admit(
        self,
        message: IngressMessage,
        compiled: CompiledState,
        batch: PartitionBatch,
        now_ms: int,
    ) -> (
        tuple[QuarantineReason, str, str | None, str | None, bytes | None]
        | tuple[WriterSchema, bytes, tuple[int, ...], tuple[Any, ...], str, Partner]
    ):
        value = message.value()
        if not value:
            return (QuarantineReason.EMPTY_VALUE, "message has no value", None, None, None)
        if len(value) > self._max_event_bytes:
            return (
                QuarantineReason.OVERSIZE_EVENT,
                f"{len(value)} bytes exceeds the limit of {self._max_event_bytes}",
                None,
                None,
                None,
            )
        claimed: bytes | None = None
        signature: bytes | None = None
        for name, header in message.headers() or ():
            if name == PUBLISHER_HEADER:
                claimed = header
            elif name == SIGNATURE_HEADER:
                signature = header
        if claimed is None or signature is None:
            return (
                QuarantineReason.UNAUTHENTICATED_PUBLISHER,
                "publisher or signature header missing",
                None,
                None,
                None,
            )
        publisher_id = claimed.decode(errors="replace")
        partner = compiled.state.partner(publisher_id)
        if partner is None:
            return (
                QuarantineReason.UNAUTHENTICATED_PUBLISHER,
                f"unknown publisher {publisher_id!r}",
                None,
                None,
                None,
            )
        record_key = message.key()
        native = self._native
        if native is not None:
            authentic = native.signature_matches(
                compiled.signing_key(partner), batch.event_type, record_key, value, signature
            )
        else:
            expected = sign_event(
                compiled.signing_key(partner), batch.event_type, record_key, value
            )
            authentic = hmac.compare_digest(expected, signature)
        if not authentic:
            return (
                QuarantineReason.UNAUTHENTICATED_PUBLISHER,
                f"signature does not match publisher {publisher_id!r}",
                None,
                None,
                None,
            )
        if value[0] != 0 or len(value) < 5:
            return (
                QuarantineReason.BAD_FRAMING,
                f"magic byte {value[0]} (expected 0)" if value[0] else "shorter than the header",
                None,
                publisher_id,
                None,
            )
        schema_id = int.from_bytes(value[1:5], "big")
        writer = self._schemas.writer(message.topic() or "", schema_id)
        if writer is None:
            subject = self._schemas.subject_of(schema_id)
            if subject is None:
                return (
                    QuarantineReason.UNKNOWN_SCHEMA_ID,
                    f"schema id {schema_id} is not registered",
                    None,
                    publisher_id,
                    None,
                )
            return (
                QuarantineReason.SCHEMA_NOT_FOR_TOPIC,
                f"schema id {schema_id} is registered under {subject!r}, not this topic",
                None,
                publisher_id,
                None,
            )
        layout = writer.layout
        try:
            if native is not None:
                offsets, envelope = self._native_layout(writer).scan_reading(value, 5)
            elif layout.scan_reading is not None:
                offsets, envelope = layout.scan_reading(value, 5)
            else:
                offsets = layout.scan(value, 5)
                envelope = tuple(
                    layout.read(name, value, offsets) if name in layout.readers else None
                    for name in ADMISSION_FIELDS
                )
            event_id, payload_publisher = envelope[0], envelope[1]
            if not isinstance(event_id, str) or not isinstance(envelope[2], str):
                raise CodecError("event_id and location_id must be strings")
        except CodecError as exc:
            return (QuarantineReason(exc.reason), str(exc), None, publisher_id, None)
        except (IndexError, UnicodeDecodeError, ValueError) as exc:
            return (QuarantineReason.UNDECODABLE_PAYLOAD, str(exc), None, publisher_id, None)
        redacted: bytes | None = None
        if payload_publisher != publisher_id:
            redacted = _redact(value, writer, offsets)
            return (
                QuarantineReason.UNAUTHENTICATED_PUBLISHER,
                f"event names publisher {payload_publisher!r} but was signed by {publisher_id!r}",
                event_id,
                publisher_id,
                redacted,
            )
        if not partner.enabled or Role.PUBLISHER not in partner.roles:
            return (
                QuarantineReason.PUBLISHER_NOT_ALLOWED,
                f"partner {publisher_id!r} is disabled or holds no publisher role",
                event_id,
                publisher_id,
                _redact(value, writer, offsets),
            )
        # The signed key must be the location and the partition the key's: then the
        # duplicate window of that one partition sees every copy of the event.
        if record_key != envelope[2].encode():
            return (
                QuarantineReason.KEY_NOT_LOCATION,
                f"record key {record_key!r} is not the location id {envelope[2]!r}",
                event_id,
                publisher_id,
                _redact(value, writer, offsets),
            )
        partition_of = native.key_partition if native is not None else key_partition
        home = partition_of(record_key, self._ingress_partitions(batch.topic))
        if home != batch.partition:
            return (
                QuarantineReason.WRONG_PARTITION,
                f"key {record_key!r} belongs on partition {home}, not {batch.partition}",
                event_id,
                publisher_id,
                _redact(value, writer, offsets),
            )
        if not self.window(batch.topic, batch.partition).add(event_id, now_ms):
            return (
                QuarantineReason.DUPLICATE_EVENT_ID,
                f"event id {event_id} was already processed",
                event_id,
                publisher_id,
                _redact(value, writer, offsets),
            )
        return writer, value, offsets, envelope, publisher_id, partner

    def _audit_json(self, body: dict[str, Any]) -> bytes:
        """Compact JSON of an audit block; the native encoder writes the same bytes."""
        if self._native is not None:
            try:
                encoded: bytes = self._native.audit_json(body)
                return encoded
            except (TypeError, ValueError):
                pass  # a value only json.dumps knows how to write
        return json.dumps(body, separators=(",", ":")).encode()

    def _row_filter(self, plan: DeliveryPlan, writer: WriterSchema) -> RowPredicate | None:
        """The plan's row filter; with the native core, compiled over the same offsets."""
        if self._native is None or plan.row_filter is None:
            return plan.row_filter
        key = (id(plan), writer.schema_id)
        found = self._native_filters.get(key)
        if found is None or found[0] is not plan:
            ops = row_filter_ops(writer.layout, plan.agreement)
            found = (plan, self._native_layout(writer).row_filter(ops))
            self._native_filters[key] = found
        predicate: RowPredicate = found[1]
        return predicate

    def _native_plan(self, plan: DeliveryPlan) -> Any:
        if self._native is None:
            return None
        found = self._native_plans.get(id(plan))
        if found is None or found[0] is not plan:
            found = self._native_plans[id(plan)] = (plan, self._native.Plan(plan.render_ops))
        return found[1]

    def _native_layout(self, writer: WriterSchema) -> Any:
        found = self._native_layouts.get(writer.schema_id)
        if found is None:
            assert self._native is not None
            found = self._native_layouts[writer.schema_id] = self._native.Layout(
                writer.schema, list(ADMISSION_FIELDS)
            )
        return found

    # -- outputs -------------------------------------------------------------------

    def _quarantine(
        self,
        message: IngressMessage,
        topic: str,
        partition: int,
        offset: int,
        reason: QuarantineReason,
        detail: str,
        redacted: bytes | None,
    ) -> Produce:
        headers = [
            (REASON_HEADER, reason.value.encode()),
            (DETAIL_HEADER, detail.encode()[:1000]),
            (ORIGIN_TOPIC_HEADER, topic.encode()),
            (ORIGIN_PARTITION_HEADER, str(partition).encode()),
            (ORIGIN_OFFSET_HEADER, str(offset).encode()),
            (SOURCE_HEADER, f"{topic}:{partition}".encode()),
            (SOURCE_OFFSETS_HEADER, str(offset).encode()),
        ]
        if redacted is None:
            # Refused before decoding (unsigned, oversize, another topic's schema...):
            # whatever decodes is redacted all the same.
            redacted = self._redacted_if_decodable(message.value(), topic)
        if redacted is not None:
            value = redacted
            headers.append((REDACTION_HEADER, b"personal-fields-nulled"))
        else:
            # Undecodable: no field can be located, so nothing can be redacted; the
            # original bytes are kept for the operator (quarantine is operator-only).
            value = message.value() or b""
            headers.append((REDACTION_HEADER, b"undecodable-kept-as-is"))
        return Produce(self._quarantine_topic, partition, message.key(), value, headers)

    def _redacted_if_decodable(self, value: bytes | None, topic: str) -> bytes | None:
        """``value`` with its personal fields nulled, if it decodes under the registered
        schema its framing names (this topic's or any other); else None."""
        if not value or len(value) < 5 or value[0] != 0:
            return None
        schema_id = int.from_bytes(value[1:5], "big")
        try:
            writer = self._schemas.writer(topic, schema_id) or self._schemas.by_id(schema_id)
            if writer is None:
                return None
            return _redact(value, writer, writer.layout.scan(value, 5))
        except Exception:  # undecodable (or a registry failure): kept as it came
            return None

    def _audit_block(
        self,
        batch: PartitionBatch,
        templates: list[dict[str, Any]],
        state: GovernanceState,
        now_ms: int,
    ) -> Produce:
        body = {
            "source": f"{batch.topic}:{batch.partition}",
            "event_type": batch.event_type,
            "state_version": state.version,
            "at_ms": now_ms,
            "candidates": state.candidate_subscribers(batch.event_type),
            "templates": templates,
            "events": batch.audit_events,
            "quarantined": batch.audit_quarantined,
        }
        return Produce(
            self._audit_topic,
            batch.partition,
            f"{batch.topic}:{batch.partition}".encode(),
            self._audit_json(body),
            [
                (SOURCE_HEADER, f"{batch.topic}:{batch.partition}".encode()),
                (SOURCE_OFFSETS_HEADER, f"{batch.first_offset}-{batch.next_offset - 1}".encode()),
            ],
        )


def _failure(exc: BaseException) -> str:
    return f"the event could not be governed: {type(exc).__name__}: {exc}"


def _undo_decisions(
    runtimes: Sequence[_RouteRuntime] | None, row: list[Any], templates: list[dict[str, Any]]
) -> None:
    """Take back the counts of an event whose governing failed part-way.

    ``row`` holds one entry per route decided so far (after the five event columns);
    the route being decided when it failed has only counted the event as received.
    Rate-limit tokens already taken stay taken.
    """
    if runtimes is None:
        return
    decided = len(row) - 5
    for runtime, entry in zip(runtimes, row[5:], strict=False):
        runtime.received -= 1
        template = templates[entry[0]]
        if template["outcome"] == "delivered":
            runtime.delivered -= 1
            runtime.delivered_ingested_ms.pop()
        else:
            runtime.withheld[template["reason"]] -= 1
    if decided < len(runtimes):
        runtimes[decided].received -= 1


def _consented_fields(
    state: GovernanceState,
    plan: DeliveryPlan,
    subject: str,
    publisher_id: str,
    subscriber_id: str,
    now: datetime,
) -> tuple[frozenset[str], list[str]]:
    purpose = plan.agreement.effective_consent_purpose
    allowed: set[str] = set()
    consent_ids: set[str] = set()
    index = state.consents
    if not index.consents_of(subject, publisher_id):
        return frozenset(), []
    for name in plan.personal_fields:
        consents = index.active_consents_for(
            subject, publisher_id, subscriber_id, purpose, name, now
        )
        if consents:
            allowed.add(name)
            consent_ids.update(consent.consent_id for consent in consents)
    return frozenset(allowed), sorted(consent_ids)


def _delivered_template(
    subscriber_id: str, agreement: Agreement, plan: DeliveryPlan, missing: tuple[str, ...]
) -> dict[str, Any]:
    delivered = [name for name in plan.fields_delivered if name not in missing]
    return {
        "subscriber": subscriber_id,
        "outcome": "delivered",
        "reason": None,
        "agreement_id": agreement.agreement_id,
        "agreement_version": agreement.version,
        "fields_delivered": delivered,
        "fields_dropped": [*plan.fields_dropped, *missing],
        "fields_transformed": dict(plan.fields_transformed),
        "personal_fields_without_consent": list(missing),
    }


def _redact(value: bytes, writer: WriterSchema, offsets: Sequence[int]) -> bytes:
    """The framed event with every personal field set to null (for quarantine)."""
    layout = writer.layout
    parts: list[bytes] = [value[:5]]
    classification = {
        field["name"]: field.get("classification") for field in writer.schema["fields"]
    }
    for index, name in enumerate(layout.field_names):
        span = value[offsets[index] : offsets[index + 1]]
        if classification.get(name) == Classification.PERSONAL.value:
            parts.append(_blank_value(layout.field_types[name], span))
        else:
            parts.append(span)
    return b"".join(parts)


_ZERO_BYTES = {"string": b"\x00", "bytes": b"\x00", "int": b"\x00", "long": b"\x00"}


def _blank_value(field_type: Any, span: bytes) -> bytes:
    """The encoding of null (or, for a field that cannot be null, an empty or zero
    value) in place of a personal field's bytes."""
    if isinstance(field_type, list):
        if "null" in field_type:
            return encode_long(field_type.index("null"))
        return b"\x00" + _blank_value(field_type[0], b"")
    base = field_type.get("type") if isinstance(field_type, dict) else field_type
    if base in _ZERO_BYTES:
        return _ZERO_BYTES[base]
    if base == "boolean":
        return b"\x00"
    if base == "float":
        return b"\x00" * 4
    if base == "double":
        return b"\x00" * 8
    if base in ("array", "map"):
        return b"\x00"
    if base == "enum":
        return b"\x00"
    if base == "fixed" and isinstance(field_type, dict):
        return b"\x00" * int(field_type["size"])
    return span  # a nested record or named reference: kept (the catalog has none)
