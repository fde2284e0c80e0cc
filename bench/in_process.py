"""The governance engine in process, for benchmarks: no broker, no registry.

The engine reads a consumed message only through a few methods and a writer schema
through a lookup, so a benchmark feeds it encoded events through these stand-ins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecoshare.config.topics import TopicNames
from ecoshare.domain.classification import Classification
from ecoshare.governance.engine import GovernanceEngine, WriterSchema


class OneWriterSchema:
    """The registry as the engine sees it, knowing one writer schema (under any topic)."""

    def __init__(self, writer: WriterSchema) -> None:
        self._writer = writer

    def writer(self, topic: str, schema_id: int) -> WriterSchema | None:
        return self._writer if schema_id == self._writer.schema_id else None

    def by_id(self, schema_id: int) -> WriterSchema | None:
        return self._writer if schema_id == self._writer.schema_id else None

    def subject_of(self, schema_id: int) -> str | None:
        return None


def in_process_engine(
    writer: WriterSchema,
    names: TopicNames,
    classification: Mapping[str, Mapping[str, Classification]],
    master_secret: bytes,
    *,
    core: str = "auto",
) -> GovernanceEngine:
    """An engine reading only ``writer``; every ingress topic has one partition, so the
    messages are all on partition 0. A day's duplicate window, as the workers keep."""
    return GovernanceEngine(
        schemas=OneWriterSchema(writer),
        classification=classification,
        master_secret=master_secret,
        delivery_topic=names.delivery,
        audit_topic=names.audit,
        quarantine_topic=names.quarantine,
        register_delivery_schema=lambda topic, schema: 100,
        max_event_bytes=65536,
        dedup_window_ms=86_400_000,
        dedup_capacity=1_000_000,
        ingress_partitions=lambda topic: 1,
        engine=core,
    )


class IngressMessage:
    """A consumed ingress message, slotted and method-only, as cheap to call as
    confluent-kafka's own ``Message`` so that it adds nothing to per-event figures.

    One message of partition ``partition`` of ``topic``, appended at ``appended_ms``."""

    __slots__ = ("_appended_ms", "_headers", "_key", "_offset", "_partition", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Any,
        offset: int,
        *,
        partition: int = 0,
        appended_ms: int = 0,
    ) -> None:
        self._topic, self._key, self._value, self._headers = topic, key, value, headers
        self._offset, self._partition, self._appended_ms = offset, partition, appended_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> Any:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._appended_ms)  # 1: TIMESTAMP_CREATE_TIME
