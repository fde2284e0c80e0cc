"""Rendering: the bytes and headers of every record a batch writes.

Deliveries are projected straight from the scanned ingress body by a compiled
:class:`~ecoshare.governance.plan.DeliveryPlan` (kept here, one per agreement version
and writer schema, with its registered delivery schema); quarantined copies have their
personal fields nulled; audit blocks are encoded by :mod:`ecoshare.codec.audit_blocks`.
Every output names the ingress partition it was written for in :attr:`Produce.source`;
the same goes on the wire as the ``ecoshare-source`` header, which only recovery reads
(:func:`ecoshare.governance.recovery.read_output_tails`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ecoshare.codec.audit_blocks import AuditBlock, encode_audit_block
from ecoshare.codec.layout import encode_long
from ecoshare.codec.wire import header_for
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.classification import Classification
from ecoshare.domain.projection import subscriber_hash_key
from ecoshare.governance.admission import NativeLayouts, Refused, SchemaLookup, WriterSchema
from ecoshare.governance.cores import native_core
from ecoshare.governance.plan import DeliveryPlan, RowPredicate, compile_plan, row_filter_ops
from ecoshare.governance.progress import EVENT_ID_HEADER, SOURCE_HEADER, SOURCE_OFFSETS_HEADER

if TYPE_CHECKING:  # batch and routing import this module's Produce and DeliveryPlans
    from ecoshare.governance.admission import Admitted
    from ecoshare.governance.batch import PartitionBatch
    from ecoshare.governance.routing import Delivery

log = logging.getLogger(__name__)

AGREEMENT_HEADER = "ecoshare-agreement"
REASON_HEADER = "ecoshare-reason"
DETAIL_HEADER = "ecoshare-detail"
ORIGIN_TOPIC_HEADER = "ecoshare-original-topic"
ORIGIN_PARTITION_HEADER = "ecoshare-original-partition"
ORIGIN_OFFSET_HEADER = "ecoshare-original-offset"
REDACTION_HEADER = "ecoshare-redaction"

IngressPartition = tuple[str, int]
"""(ingress topic, partition): the source an output was written for."""


@dataclass(slots=True, frozen=True)
class PythonProduce:
    """One record to produce, to an explicit partition, for one ingress partition.

    Read-only and unhashable, as the compiled core's record it stands in for.
    """

    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    source: IngressPartition

    __hash__ = None  # type: ignore[assignment]


if TYPE_CHECKING:
    Produce = PythonProduce
else:
    # The compiled core's record of the same six fields, where it is built: the batch
    # kernel makes ~2.4 per event without a call into Python. Every path of a process
    # makes the same type (the Python core's too, when forced: the record holds data
    # and decides nothing), so outputs compare equal across paths and cores.
    Produce = getattr(native_core(), "Produce", PythonProduce)


def source_header(source: IngressPartition) -> tuple[str, bytes]:
    """The wire form of :attr:`Produce.source`, for recovery's reading of output tails."""
    return (SOURCE_HEADER, f"{source[0]}:{source[1]}".encode())


class DeliveryPlans:
    """Compiled delivery plans, their delivery schemas and (native core) compiled ops.

    A plan is compiled and its schema registered once per (agreement, version, writer
    schema); a registry refusal is kept as its error text, and that agreement's events
    are withheld as ``delivery_schema_refused``.
    """

    def __init__(
        self,
        *,
        classification: Mapping[str, Mapping[str, Classification]],
        master_secret: bytes,
        delivery_topic: Callable[[str, str], str],
        register_delivery_schema: Callable[[str, dict[str, Any]], int],
        native: ModuleType | None,
        native_layouts: NativeLayouts | None,
    ) -> None:
        self._classification = classification
        self._master_secret = master_secret
        self._delivery_topic = delivery_topic
        self._register = register_delivery_schema
        self._native = native
        self._native_layouts = native_layouts
        self.compiled: dict[tuple[str, int, int], tuple[DeliveryPlan, bytes] | str] = {}
        self._hash_keys: dict[str, bytes] = {}
        self._native_plans: dict[int, tuple[DeliveryPlan, Any]] = {}
        self._native_filters: dict[tuple[int, int], tuple[DeliveryPlan, Any]] = {}

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
        found = self.compiled.get(key)
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
            self.compiled[key] = found
        return found

    def row_filter(self, plan: DeliveryPlan, writer: WriterSchema) -> RowPredicate | None:
        """The plan's row filter; with the native core, compiled over the same offsets."""
        if self._native_layouts is None or plan.row_filter is None:
            return plan.row_filter
        key = (id(plan), writer.schema_id)
        found = self._native_filters.get(key)
        if found is None or found[0] is not plan:
            ops = row_filter_ops(writer.layout, plan.agreement)
            found = (plan, self._native_layouts.of(writer).row_filter(ops))
            self._native_filters[key] = found
        predicate: RowPredicate = found[1]
        return predicate

    def native_plan(self, plan: DeliveryPlan) -> Any:
        """The compiled core's renderer of ``plan`` (None with the Python core)."""
        if self._native is None:
            return None
        found = self._native_plans.get(id(plan))
        if found is None or found[0] is not plan:
            found = self._native_plans[id(plan)] = (plan, self._native.Plan(plan.render_ops))
        return found[1]


# -- quarantine ----------------------------------------------------------------------


def render_deliveries(
    batch: PartitionBatch,
    offset: int,
    event: Admitted,
    deliveries: list[Delivery],
    append_output: Callable[[Produce], None],
) -> None:
    """The delivery records of one event, but those already written before a crash."""
    headers: tuple[tuple[str, bytes], ...] | None = None
    key = event.location_id.encode()
    body, offsets = event.body, event.offsets
    source = (batch.topic, batch.partition)
    for runtime, chosen, allowed in deliveries:
        if batch.written(runtime.topic, offset):
            continue
        if headers is None:
            headers = (
                (EVENT_ID_HEADER, event.event_id.encode()),
                batch.source_header,
                (SOURCE_OFFSETS_HEADER, str(offset).encode()),
            )
        append_output(
            Produce(
                runtime.topic,
                batch.partition,
                key,
                chosen.render(body, offsets, allowed),
                [*headers, chosen.agreement_header],
                source,
            )
        )


def quarantine_output(
    quarantine_topic: str,
    message_key: bytes | None,
    message_value: bytes | None,
    source: IngressPartition,
    offset: int,
    refused: Refused,
    schemas: SchemaLookup,
) -> Produce:
    """The quarantined copy of a refused message, personal fields nulled where it decodes."""
    topic, partition = source
    headers = [
        (REASON_HEADER, refused.reason.value.encode()),
        (DETAIL_HEADER, refused.detail.encode()[:1000]),
        (ORIGIN_TOPIC_HEADER, topic.encode()),
        (ORIGIN_PARTITION_HEADER, str(partition).encode()),
        (ORIGIN_OFFSET_HEADER, str(offset).encode()),
        source_header(source),
        (SOURCE_OFFSETS_HEADER, str(offset).encode()),
    ]
    redacted: bytes | None = None
    if refused.writer is not None and refused.offsets is not None and message_value:
        try:
            redacted = redact(message_value, refused.writer, refused.offsets)
        except Exception:  # no input may stop a partition: redacted below if it decodes
            log.exception("redaction failed at %s:%s@%s", topic, partition, offset)
    if redacted is None:
        # Refused before its body was scanned (unsigned, oversize, another topic's
        # schema...): whatever decodes is redacted all the same.
        redacted = redacted_if_decodable(message_value, topic, schemas)
    if redacted is not None:
        value = redacted
        headers.append((REDACTION_HEADER, b"personal-fields-nulled"))
    else:
        # Undecodable: no field can be located, so nothing can be redacted; the
        # original bytes are kept for the operator (quarantine is operator-only).
        value = bytes(message_value) if message_value else b""
        headers.append((REDACTION_HEADER, b"undecodable-kept-as-is"))
    return Produce(quarantine_topic, partition, message_key, value, headers, source)


def redacted_if_decodable(value: bytes | None, topic: str, schemas: SchemaLookup) -> bytes | None:
    """``value`` with its personal fields nulled, if it decodes under the registered
    schema its framing names (this topic's or any other); else None."""
    if not value or len(value) < 5 or value[0] != 0:
        return None
    schema_id = int.from_bytes(value[1:5], "big")
    try:
        writer = schemas.writer(topic, schema_id) or schemas.by_id(schema_id)
        if writer is None:
            return None
        return redact(value, writer, writer.layout.scan(value, 5))
    except Exception:  # undecodable (or a registry failure): kept as it came
        return None


def redact(value: bytes, writer: WriterSchema, offsets: Sequence[int]) -> bytes:
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


# -- audit ---------------------------------------------------------------------------


def audit_output(
    audit_topic: str,
    block: AuditBlock,
    source: IngressPartition,
    offsets: tuple[int, int],
    native: ModuleType | None,
) -> Produce:
    """The audit message of one partition's batch, covering ingress ``offsets``
    (first, last) inclusive; keyed by its source so a partition's blocks stay in order."""
    wire_source = source_header(source)
    return Produce(
        audit_topic,
        source[1],
        wire_source[1],
        encode_audit_block(block, native.audit_json if native is not None else None),
        [wire_source, (SOURCE_OFFSETS_HEADER, f"{offsets[0]}-{offsets[1]}".encode())],
        source,
    )
