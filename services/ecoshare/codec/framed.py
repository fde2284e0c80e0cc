"""Decoding framed Avro messages (Confluent wire format) with the schema registry."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from ecoshare.codec.errors import CodecError
from ecoshare.codec.wire import HEADER_SIZE, schema_id_of
from ecoshare.errors import EcoshareError


class MessageDecodeError(EcoshareError):
    """A message is not framed Avro, or its schema is unknown to the registry."""


class FramedDecoder:
    """Decodes framed values; writer schemas are fetched once per id and cached.

    Thread-safe.
    """

    def __init__(self, registry_url: str) -> None:
        self._client = SchemaRegistryClient({"url": registry_url})
        self._parsed: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _schema(self, schema_id: int) -> Any:
        with self._lock:
            parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        try:
            found = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            raise MessageDecodeError(f"schema id {schema_id}: {exc.error_message}") from exc
        if not found.schema_str:
            raise MessageDecodeError(f"schema id {schema_id} has no schema text")
        parsed = fastavro.parse_schema(json.loads(found.schema_str), _write_hint=False)
        with self._lock:
            self._parsed[schema_id] = parsed
        return parsed

    def decode(self, value: bytes | None) -> dict[str, Any]:
        """The record of a framed value, as fastavro reads it."""
        if not value:
            raise MessageDecodeError("the message has no value")
        try:
            parsed = self._schema(schema_id_of(value))
            record = fastavro.schemaless_reader(io.BytesIO(value[HEADER_SIZE:]), parsed, None)
        except (CodecError, ValueError, EOFError, KeyError, TypeError) as exc:
            raise MessageDecodeError(f"cannot decode the message: {exc}") from exc
        if not isinstance(record, dict):
            raise MessageDecodeError("the message is not an Avro record")
        return record
