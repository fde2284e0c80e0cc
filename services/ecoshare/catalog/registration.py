"""Registering the event catalog in the schema registry (idempotent)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from ecoshare.catalog.event_catalog import Catalog
from ecoshare.config.topics import TopicNames, value_subject
from ecoshare.errors import EcoshareError


class SchemaRegistrationError(EcoshareError):
    """The registry refused a catalog schema (incompatible change, invalid schema)."""


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    subject: str
    schema_id: int
    record: str


def control_subject(name: str) -> str:
    """Control records are registered by record name; their topics carry JSON documents."""
    return f"nl.ecoshare.control.{name}"


def register_catalog(
    catalog: Catalog, registry_url: str, names: TopicNames
) -> list[RegisteredSchema]:
    """Register every event schema under its ingress subject and every control schema.

    Registering an unchanged catalog again returns the same ids and changes nothing.
    """
    client = SchemaRegistryClient({"url": registry_url})
    registered: list[RegisteredSchema] = []
    subjects = [
        (value_subject(names.ingress(event_type)), catalog.event_schema(event_type), event_type)
        for event_type in catalog.event_types
    ] + [
        (control_subject(name), catalog.control_schema(name), name)
        for name in catalog.control_names
    ]
    for subject, schema, record in subjects:
        try:
            schema_id = client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except SchemaRegistryError as exc:
            raise SchemaRegistrationError(f"{subject}: {exc.error_message}") from exc
        registered.append(RegisteredSchema(subject, int(schema_id), record))
    return registered
