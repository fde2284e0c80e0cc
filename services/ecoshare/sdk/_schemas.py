"""Registry access shared by the publisher and the subscriber."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient


class RegistrySchemas:
    """Schemas by id and by subject, cached; parsed for fastavro once."""

    def __init__(self, url: str) -> None:
        self.client = SchemaRegistryClient({"url": url})
        self._parsed_by_id = lru_cache(maxsize=256)(self._parse_by_id)

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return int(self.client.register_schema(subject, Schema(json.dumps(schema), "AVRO")))

    def parsed(self, schema_id: int) -> Any:
        return self._parsed_by_id(schema_id)

    def _parse_by_id(self, schema_id: int) -> Any:
        found = self.client.get_schema(schema_id)
        return fastavro.parse_schema(json.loads(found.schema_str or "null"), _write_hint=False)
