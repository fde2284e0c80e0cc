"""Writer schemas of the ingress topics, resolved through the registry and compiled."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from ecoshare.config.topics import value_subject
from ecoshare.governance.engine import WriterSchema

_NEGATIVE_TTL_SECONDS = 5.0


class RegistrySchemaLookup:
    """Which schema ids each ingress topic accepts (those registered under its subject).

    Unknown ids are looked up again at most every few seconds, so a publisher that
    registers a new compatible version is accepted without a restart, while a flood
    of garbage ids costs no registry traffic.
    """

    def __init__(self, client: SchemaRegistryClient, ingress_topics: Mapping[str, str]) -> None:
        self._client = client
        self._event_types = dict(ingress_topics)  # topic -> event type
        self._writers: dict[tuple[str, int], WriterSchema] = {}
        self._misses: dict[tuple[str, int], float] = {}
        self._subjects: dict[int, str | None] = {}
        self._by_id: dict[int, WriterSchema | None] = {}
        self._lock = threading.Lock()

    def writer(self, topic: str, schema_id: int) -> WriterSchema | None:
        found = self._writers.get((topic, schema_id))
        if found is not None:
            return found
        key = (topic, schema_id)
        now = time.monotonic()
        if now - self._misses.get(key, -1e9) < _NEGATIVE_TTL_SECONDS:
            return None
        with self._lock:
            self._refresh(topic)
        found = self._writers.get(key)
        if found is None:
            self._misses[key] = now
        return found

    def _refresh(self, topic: str) -> None:
        event_type = self._event_types.get(topic)
        if event_type is None:
            return
        subject = value_subject(topic)
        try:
            versions = self._client.get_versions(subject)
        except SchemaRegistryError:
            return
        for version in versions:
            registered = self._client.get_version(subject, version)
            schema_id = int(registered.schema_id or 0)
            if (topic, schema_id) in self._writers:
                continue
            schema = json.loads(registered.schema.schema_str or "null")
            self._writers[(topic, schema_id)] = WriterSchema.compile(schema_id, event_type, schema)

    def by_id(self, schema_id: int) -> WriterSchema | None:
        """Any registered schema by id, compiled (to redact what another topic's schema
        encodes); None if the registry does not know the id."""
        if schema_id in self._by_id:
            return self._by_id[schema_id]
        try:
            schema = json.loads(self._client.get_schema(schema_id).schema_str or "null")
            found: WriterSchema | None = WriterSchema.compile(
                schema_id, str(schema.get("name", "?")), schema
            )
        except (SchemaRegistryError, ValueError, AttributeError):
            found = None
        self._by_id[schema_id] = found
        return found

    def subject_of(self, schema_id: int) -> str | None:
        """A description of where ``schema_id`` is registered, or None if nowhere."""
        if schema_id in self._subjects:
            return self._subjects[schema_id]
        try:
            schema = self._client.get_schema(schema_id)
            name = json.loads(schema.schema_str or "{}").get("name", "?")
            found: str | None = f"schema {name}"
        except SchemaRegistryError:
            found = None
        self._subjects[schema_id] = found
        return found


def register_schema(client: SchemaRegistryClient, subject: str, schema: dict[str, Any]) -> int:
    return int(client.register_schema(subject, Schema(json.dumps(schema), "AVRO")))
