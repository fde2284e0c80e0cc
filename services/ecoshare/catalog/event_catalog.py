"""The event catalog: versioned Avro schemas with a classification on every field.

Layout of the catalog directory::

    events/<EventType>.v<N>.avsc     namespace nl.ecoshare.events
    control/<Record>.v<N>.avsc       namespace nl.ecoshare.control

Every field, nested records' fields included, carries a ``doc`` and a
``"classification": "public" | "internal" | "personal"`` attribute. The latest version
of each record is the current one; older versions stay readable.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from ecoshare.domain.classification import Classification
from ecoshare.domain.formats import FORMAT_ATTRIBUTE, FORMATS
from ecoshare.errors import EcoshareError

EVENT_NAMESPACE = "nl.ecoshare.events"
CONTROL_NAMESPACE = "nl.ecoshare.control"
_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")
_CLASSIFICATIONS = frozenset(item.value for item in Classification)


class CatalogError(EcoshareError):
    """The catalog directory or one of its schemas is missing or invalid."""


@dataclass(frozen=True, slots=True)
class CatalogSchema:
    """One version of one record of the catalog.

    ``schema`` is the JSON as written, custom attributes kept (a plain dict so that it
    serialises as is; treat it as read-only, or use :meth:`Catalog.event_schema` for a
    private copy); ``parsed`` is
    ``fastavro.parse_schema(schema, _write_hint=False)``; ``classification`` maps the
    top-level fields, in catalog order, to their classification.
    """

    name: str
    version: int
    path: Path
    schema: dict[str, Any]
    parsed: dict[str, Any]
    classification: Mapping[str, Classification]

    @property
    def field_names(self) -> tuple[str, ...]:
        """Top-level field names in catalog order."""
        return tuple(self.classification)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every schema of a catalog directory, the latest version of each record current."""

    directory: Path
    event_versions: Mapping[str, Mapping[int, CatalogSchema]]
    control_versions: Mapping[str, Mapping[int, CatalogSchema]]
    _latest_events: Mapping[str, CatalogSchema] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        latest = {
            name: versions[max(versions)] for name, versions in sorted(self.event_versions.items())
        }
        object.__setattr__(self, "_latest_events", MappingProxyType(latest))

    @property
    def event_types(self) -> tuple[str, ...]:
        """Names of the catalog's event types, sorted."""
        return tuple(self._latest_events)

    @property
    def control_names(self) -> tuple[str, ...]:
        """Names of the catalog's control-plane records, sorted."""
        return tuple(sorted(self.control_versions))

    def __iter__(self) -> Iterator[CatalogSchema]:
        """The current schema of every event type."""
        return iter(self._latest_events.values())

    def event(self, event_type: str, version: int | None = None) -> CatalogSchema:
        """The event type's schema, the current version unless ``version`` is given."""
        return _pick(self.event_versions, "event type", event_type, version)

    def control(self, name: str, version: int | None = None) -> CatalogSchema:
        """A control record's schema, the current version unless ``version`` is given."""
        return _pick(self.control_versions, "control record", name, version)

    def event_schema(self, event_type: str, version: int | None = None) -> dict[str, Any]:
        """A private copy of the event type's schema JSON, custom attributes included."""
        return copy.deepcopy(dict(self.event(event_type, version).schema))

    def parsed_schema(self, event_type: str, version: int | None = None) -> dict[str, Any]:
        """The fastavro-parsed schema (``_write_hint=False``) of the event type."""
        return self.event(event_type, version).parsed

    def control_schema(self, name: str, version: int | None = None) -> dict[str, Any]:
        """A private copy of a control record's schema JSON."""
        return copy.deepcopy(dict(self.control(name, version).schema))

    def version(self, event_type: str) -> int:
        """The current version of the event type."""
        return self.event(event_type).version

    def classification(self, event_type: str) -> dict[str, Classification]:
        """Classification of each top-level field of the current schema, in catalog order."""
        return dict(self.event(event_type).classification)

    def example(self, event_type: str) -> dict[str, Any] | None:
        """The documented example event of ``event_type`` (JSON, as partners publish it
        over HTTP or with ``ecoshare publish``), from ``examples/<EventType>.json``."""
        path = self.directory / "examples" / f"{event_type}.json"
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CatalogError(f"{path}: not readable JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise CatalogError(f"{path}: an example must be a JSON object")
        return value

    def event_schemas(self) -> dict[str, dict[str, Any]]:
        """Current schema JSON per event type (shared, read-only: copy before changing)."""
        return {name: entry.schema for name, entry in self._latest_events.items()}


def _pick(
    table: Mapping[str, Mapping[int, CatalogSchema]], kind: str, name: str, version: int | None
) -> CatalogSchema:
    versions = table.get(name)
    if not versions:
        raise CatalogError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table)) or 'none'}")
    chosen = max(versions) if version is None else version
    if chosen not in versions:
        raise CatalogError(f"{kind} {name!r} has no version {chosen}")
    return versions[chosen]


def _check_fields(record: Mapping[str, Any], where: str) -> None:
    fields = record.get("fields")
    if not isinstance(fields, list) or not fields:
        raise CatalogError(f"{where}: record {record.get('name')!r} has no fields")
    for item in fields:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise CatalogError(f"{where}: a field of {record.get('name')!r} has no name")
        field_where = f"{where}: field {record.get('name')}.{item['name']}"
        label = item.get("classification")
        if label is None:
            raise CatalogError(f"{field_where} has no classification")
        if label not in _CLASSIFICATIONS:
            raise CatalogError(
                f"{field_where} has classification {label!r}; "
                f"expected one of {', '.join(sorted(_CLASSIFICATIONS))}"
            )
        doc = item.get("doc")
        if not isinstance(doc, str) or not doc.strip():
            raise CatalogError(f"{field_where} has no doc")
        value_format = item.get(FORMAT_ATTRIBUTE)
        if value_format is not None and value_format not in FORMATS:
            raise CatalogError(
                f"{field_where} has format {value_format!r}; "
                f"expected one of {', '.join(sorted(FORMATS))}"
            )
        _check_nested(item.get("type"), where)


def _check_nested(avro_type: Any, where: str) -> None:
    if isinstance(avro_type, list):
        for branch in avro_type:
            _check_nested(branch, where)
    elif isinstance(avro_type, Mapping):
        kind = avro_type.get("type")
        if kind == "record":
            _check_fields(avro_type, where)
        elif kind == "array":
            _check_nested(avro_type.get("items"), where)
        elif kind == "map":
            _check_nested(avro_type.get("values"), where)


def _load_schema(path: Path, namespace: str) -> CatalogSchema:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise CatalogError(f"{path}: schema files are named <Record>.v<N>.avsc")
    name, version = match.group("name"), int(match.group("version"))
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read the schema: {exc}") from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise CatalogError(f"{path}: the schema must be an Avro record")
    if schema.get("name") != name:
        raise CatalogError(f"{path}: record name {schema.get('name')!r} must be {name!r}")
    if schema.get("namespace") != namespace:
        raise CatalogError(f"{path}: namespace {schema.get('namespace')!r} must be {namespace!r}")
    _check_fields(schema, str(path))
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(schema), _write_hint=False)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise CatalogError(f"{path}: invalid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict):
        raise CatalogError(f"{path}: the schema must be an Avro record")
    classification = {
        item["name"]: Classification(item["classification"]) for item in schema["fields"]
    }
    return CatalogSchema(
        name=name,
        version=version,
        path=path,
        schema=schema,
        parsed=parsed,
        classification=MappingProxyType(classification),
    )


def _load_directory(directory: Path, namespace: str) -> dict[str, Mapping[int, CatalogSchema]]:
    table: dict[str, dict[int, CatalogSchema]] = {}
    for path in sorted(directory.glob("*.avsc")):
        entry = _load_schema(path, namespace)
        table.setdefault(entry.name, {})[entry.version] = entry
    return {name: MappingProxyType(versions) for name, versions in table.items()}


def load_catalog(directory: Path) -> Catalog:
    """Load and check every schema under ``directory`` (``events/`` and ``control/``).

    Raises :class:`CatalogError` when ``events/`` is missing or empty, or when any schema
    is unreadable, misnamed, in the wrong namespace, not valid Avro, or has a field
    without a classification or a doc. ``control/`` may be absent.
    """
    events_dir = directory / "events"
    if not events_dir.is_dir():
        raise CatalogError(f"{directory}: no events/ directory of Avro schemas")
    events = _load_directory(events_dir, EVENT_NAMESPACE)
    if not events:
        raise CatalogError(f"{events_dir}: no <EventType>.v<N>.avsc schemas")
    control_dir = directory / "control"
    control = _load_directory(control_dir, CONTROL_NAMESPACE) if control_dir.is_dir() else {}
    return Catalog(
        directory=directory,
        event_versions=MappingProxyType(events),
        control_versions=MappingProxyType(control),
    )
