"""In-process harness for the governance engine: real codec, real plans, no broker.

The engine's input is anything shaped like a confluent-kafka Message; these tests hand
it plain objects so that the pure decision path can be checked against the reference
policy over thousands of generated cases.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import fastavro

from ecoshare.codec.errors import CodecError
from ecoshare.codec.layout import compile_layout
from ecoshare.codec.wire import frame
from ecoshare.config.topics import TopicNames
from ecoshare.domain.identity import (
    PUBLISHER_HEADER,
    SIGNATURE_HEADER,
    partner_signing_key,
    sign_event,
)
from ecoshare.governance.engine import GovernanceEngine, WriterSchema
from ecoshare.governance.partitioning import key_partition
from tests.strategies import CATALOG, PLATFORM_SECRET

NAMES = TopicNames("unit.")
CORES = ("python", "native")
"""Both governance cores; engine tests run once per core (native must be built)."""
WRITER_IDS = {"StoreStatusChanged": 1, "LocationAvailability": 2}
INGRESS_PARTITIONS = 4


@dataclass
class IngressRecord:
    """A stand-in for a consumed Kafka message (the engine reads only these methods)."""

    topic_name: str
    value_bytes: bytes | None
    header_list: list[tuple[str, bytes]]
    offset_number: int = 0
    partition_number: int = 0
    key_bytes: bytes | None = None
    ingested_ms: int = 0

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes | None:
        return self.value_bytes

    def headers(self) -> list[tuple[str, bytes]]:
        return self.header_list

    def timestamp(self) -> tuple[int, int]:
        return (2, self.ingested_ms)  # 2: TIMESTAMP_LOG_APPEND_TIME


@dataclass
class StaticSchemas:
    writers: dict[tuple[str, int], WriterSchema] = field(default_factory=dict)

    def writer(self, topic: str, schema_id: int) -> WriterSchema | None:
        return self.writers.get((topic, schema_id))

    def by_id(self, schema_id: int) -> WriterSchema | None:
        return next((w for (_, known), w in self.writers.items() if known == schema_id), None)

    def subject_of(self, schema_id: int) -> str | None:
        for (_, known), writer in self.writers.items():
            if known == schema_id:
                return f"schema {writer.event_type}"
        return None


@dataclass
class RecordingRegistry:
    """Delivery schemas registered by the engine, by id."""

    schemas: dict[int, dict[str, Any]] = field(default_factory=dict)

    def register(self, topic: str, schema: dict[str, Any]) -> int:
        for schema_id, known in self.schemas.items():
            if known == schema:
                return schema_id
        schema_id = 100 + len(self.schemas)
        self.schemas[schema_id] = schema
        return schema_id

    def decode(self, value: bytes) -> dict[str, Any]:
        schema_id = int.from_bytes(value[1:5], "big")
        parsed = fastavro.parse_schema(self.schemas[schema_id], _write_hint=False)
        return dict(fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, None))  # type: ignore[call-overload]


def make_engine(
    registry: RecordingRegistry, core: str = "python", **overrides: Any
) -> GovernanceEngine:
    schemas = StaticSchemas()
    for event_type, schema_id in WRITER_IDS.items():
        schema = CATALOG.event_schema(event_type)
        schemas.writers[(NAMES.ingress(event_type), schema_id)] = WriterSchema.compile(
            schema_id, event_type, schema
        )
    options: dict[str, Any] = {
        "schemas": schemas,
        "classification": {t: CATALOG.classification(t) for t in WRITER_IDS},
        "master_secret": PLATFORM_SECRET,
        "delivery_topic": NAMES.delivery,
        "audit_topic": NAMES.audit,
        "quarantine_topic": NAMES.quarantine,
        "register_delivery_schema": registry.register,
        "max_event_bytes": 4096,
        "dedup_window_ms": 3_600_000,
        "dedup_capacity": 10_000,
        "ingress_partitions": lambda topic: INGRESS_PARTITIONS,
        "engine": core,
    }
    options.update(overrides)
    engine = GovernanceEngine(**options)
    assert engine.core == core, f"asked for the {core} core, got {engine.core}"
    return engine


def encode_event(event_type: str, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, CATALOG.parsed_schema(event_type), record)
    return frame(WRITER_IDS[event_type], buffer.getvalue())


def signed_message(
    event_type: str,
    value: bytes,
    publisher_id: str,
    *,
    key_generation: int = 1,
    offset: int = 0,
    signer: str | None = None,
    record_key: bytes | None = None,
    partition: int | None = None,
) -> IngressRecord:
    """A signed ingress message, keyed by its location id and on that key's partition
    unless ``record_key`` or ``partition`` say otherwise."""
    key = partner_signing_key(PLATFORM_SECRET, signer or publisher_id, key_generation)
    if record_key is None:
        record_key = location_of(value).encode()
    return IngressRecord(
        NAMES.ingress(event_type),
        value,
        [
            (PUBLISHER_HEADER, publisher_id.encode()),
            (SIGNATURE_HEADER, sign_event(key, event_type, record_key, value)),
        ],
        offset_number=offset,
        partition_number=(
            key_partition(record_key, INGRESS_PARTITIONS) if partition is None else partition
        ),
        key_bytes=record_key,
    )


def location_of(value: bytes) -> str:
    """The location id of a framed catalog event (the key it is published under)."""
    schema_id = int.from_bytes(value[1:5], "big")
    event_type = next((t for t, i in WRITER_IDS.items() if i == schema_id), None)
    if event_type is None or value[0] != 0:
        return ""
    layout = compile_layout(CATALOG.event_schema(event_type))
    try:
        return str(layout.read("location_id", value, layout.offsets(value, 5)))
    except CodecError:  # not a valid event: any key will do for the test
        return ""


def audit_rows(outputs: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(output.value) for output in outputs if output.topic == NAMES.audit]
