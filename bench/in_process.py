"""The governance engine in process, for benchmarks: no broker, no registry.

The engine reads a writer schema through a lookup, so a benchmark feeds it encoded
events, as confluent-kafka messages, with a registry stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Message

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


def IngressMessage(  # noqa: N802 - named for the type the worker consumes
    topic: str,
    key: bytes,
    value: bytes,
    headers: Any,
    offset: int,
    *,
    partition: int = 0,
    appended_ms: int = 0,
) -> Message:
    """A consumed ingress message: confluent-kafka's own ``Message``, the type a worker
    gets from ``consume``, so that its accessors cost here what they cost there.

    One message of partition ``partition`` of ``topic``, appended by the broker at
    ``appended_ms`` (the ingress topics use LogAppendTime)."""
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=(TIMESTAMP_LOG_APPEND_TIME, appended_ms),
    )
