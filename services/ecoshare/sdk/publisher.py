"""Publish catalog events to the platform's ingress topics."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import fastavro
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from fastavro.validation import ValidationError, validate

from ecoshare.adapters.kafka.config import producer_config
from ecoshare.codec.wire import frame
from ecoshare.config.topics import TopicNames, value_subject
from ecoshare.domain.events import CatalogEvent
from ecoshare.domain.formats import conform
from ecoshare.domain.identity import PUBLISHER_HEADER, SIGNATURE_HEADER, sign_event
from ecoshare.sdk._schemas import RegistrySchemas
from ecoshare.sdk.errors import EventTooLargeError, EventValidationError, PublishError

DEFAULT_MAX_EVENT_BYTES = 65536
"""The platform's default ECOSHARE_MAX_EVENT_BYTES: larger events are quarantined."""


class Publisher:
    """Signs, validates, encodes and produces events as one partner.

    ``publish`` validates the whole event before anything is produced: an event that
    does not match its schema raises :class:`EventValidationError` naming the field,
    and nothing of it is sent. The key is the location id.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        schema_registry_url: str,
        partner_id: str,
        signing_key: bytes,
        schemas_dir: Path,
        topic_prefix: str = "",
        producer_overrides: Mapping[str, Any] | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.partner_id = partner_id
        self._signing_key = signing_key
        self._names = TopicNames(topic_prefix)
        self._registry = RegistrySchemas(schema_registry_url)
        self._schemas_dir = schemas_dir
        self._max_event_bytes = max_event_bytes
        self._writers: dict[str, tuple[int, Any, dict[str, Any]]] = {}
        self._failures: list[str] = []
        self._producer = Producer(producer_config(bootstrap_servers, producer_overrides))

    def _writer(self, event_type: str) -> tuple[int, Any, dict[str, Any]]:
        writer = self._writers.get(event_type)
        if writer is None:
            from ecoshare.catalog.event_catalog import load_catalog

            schema = load_catalog(self._schemas_dir).event_schema(event_type)
            schema_id = self._registry.register(
                value_subject(self._names.ingress(event_type)), schema
            )
            writer = (schema_id, fastavro.parse_schema(schema, _write_hint=False), schema)
            self._writers[event_type] = writer
        return writer

    def encode(
        self, event: CatalogEvent | Mapping[str, Any], event_type: str | None = None
    ) -> tuple[str, bytes, bytes]:
        """(event type, key, framed value) of an event, validated against its schema."""
        if isinstance(event, CatalogEvent):
            event_type = event.event_type
            record = event.to_avro()
        elif event_type is None:
            raise ValueError("event_type is required when publishing a mapping")
        else:
            record = dict(event)
        schema_id, parsed, schema = self._writer(event_type)
        fields = parsed["fields"]
        known = {field["name"] for field in fields}
        for name in record:
            if name not in known:
                raise EventValidationError(event_type, name, "is not a field of the schema")
        for field in fields:
            if field["name"] not in record and "default" not in field:
                raise EventValidationError(event_type, field["name"], "is required")
        record, format_problems = conform(schema, record)
        if format_problems:
            raise EventValidationError(event_type, *format_problems[0])
        try:
            validate(record, parsed, raise_errors=True, strict=True)
        except ValidationError as exc:
            field, message = _first_validation_error(exc, str(parsed["name"]))
            raise EventValidationError(event_type, field, message) from exc
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, record)
        body = buffer.getvalue()
        if len(body) + 5 > self._max_event_bytes:
            raise EventTooLargeError(event_type, len(body) + 5, self._max_event_bytes)
        key = str(record.get("location_id", "")).encode()
        return event_type, key, frame(schema_id, body)

    def publish(
        self, event: CatalogEvent | Mapping[str, Any], event_type: str | None = None
    ) -> None:
        """Queue one event for delivery (call :meth:`flush` to wait for acknowledgement)."""
        event_type, key, value = self.encode(event, event_type)
        self.produce_encoded(event_type, key, value)

    def produce_encoded(
        self,
        event_type: str,
        key: bytes,
        value: bytes,
        on_written: Callable[[str, int, int], None] | None = None,
    ) -> None:
        """Queue one encoded event, signed; ``on_written(topic, partition, offset)``
        is called once the broker has acknowledged it (within :meth:`flush`)."""
        headers: list[tuple[str, str | bytes | None]] = [
            (PUBLISHER_HEADER, self.partner_id.encode()),
            (SIGNATURE_HEADER, sign_event(self._signing_key, event_type, key, value)),
        ]
        topic = self._names.ingress(event_type)
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=lambda error, message: self._on_delivery(
                        error, message, on_written
                    ),
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def _on_delivery(
        self,
        error: KafkaError | None,
        message: Message,
        on_written: Callable[[str, int, int], None] | None = None,
    ) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")
        elif on_written is not None:
            on_written(
                str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
            )

    def flush(self, timeout_seconds: float = 30.0) -> None:
        """Wait until every queued event is acknowledged; PublishError otherwise."""
        try:
            remaining = self._producer.flush(timeout_seconds)
        except KafkaException as exc:
            raise PublishError(str(exc)) from exc
        if remaining:
            raise PublishError(f"{remaining} events not acknowledged within {timeout_seconds}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise PublishError(f"{len(failures)} events failed: {failures[0]}")

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()


def _first_validation_error(exc: ValidationError, record_name: str) -> tuple[str, str]:
    """The field path (relative to the record) and message of fastavro's first error."""
    for item in exc.errors:
        path = str(getattr(item, "field", "") or "")
        if path.startswith(record_name + "."):
            path = path[len(record_name) + 1 :]
        datum = getattr(item, "datum", None)
        expected = getattr(item, "schema", None)
        if path:
            return path, f"{datum!r} is not a valid {expected}"
        return "?", str(item)
    return "?", str(exc)
