"""The registry's state as a fold over the records of its Kafka topic.

Every mutation is one record whose key says what it is about; the layout follows
Confluent's ``_schemas`` topic, so the topic reads the same to people who know that one.
Keys and values are JSON objects:

* ``SCHEMA`` key ``{"keytype","subject","version","magic":1}``, value
  ``{"subject","version","id","schema","deleted"}``; a null value is a hard delete.
* ``CONFIG`` key ``{"keytype","subject","magic":0}`` (subject null = the global level),
  value ``{"compatibilityLevel"}``; a null value restores the default.
* ``DELETE_SUBJECT`` key ``{"keytype","subject","magic":0}``, value
  ``{"subject","version"}``: soft-deletes every version up to ``version``.
* ``NOOP`` key ``{"keytype","magic":0}``, value ``{"marker"}``: the store's
  read-to-the-end marker, no state.

Applying records is deterministic and depends only on their order, so every instance
that reads the topic arrives at the same state. Where two writers race (two instances
registering at once), the first record to claim a subject version or a schema id wins
and later contradicting records are ignored; the loser notices and retries. Because the
topic is compacted, the last record per key must also be the one that counts: keys are
written so that a later record for a key always supersedes the earlier one.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ecoshare.registry.avro_schemas import ParsedSchema, parse_schema
from ecoshare.registry.compatibility import DEFAULT_LEVEL, CompatibilityLevel, parse_level
from ecoshare.registry.errors import RegistryError

logger = logging.getLogger(__name__)

Key = dict[str, Any]
Value = dict[str, Any]

# Names the content-derived guids; any fixed uuid would do, it must simply never change.
_GUID_NAMESPACE = uuid.UUID("0b6f4d0e-3c55-5d8e-9a53-6f1d2a7c9e41")


class MalformedRecordError(ValueError):
    """A topic record this registry cannot interpret; it is skipped, not fatal."""


def encode_json(document: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes. Keys must encode identically every time for compaction to work."""
    return json.dumps(document, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> Key:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def config_key(subject: str | None) -> Key:
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def delete_subject_key(subject: str) -> Key:
    return {"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0}


def config_value(level: CompatibilityLevel) -> Value:
    return {"compatibilityLevel": level.value}


def delete_subject_value(subject: str, up_to_version: int) -> Value:
    return {"subject": subject, "version": up_to_version}


def schema_guid(identity: str) -> str:
    """A guid for a schema, derived from its identity so every instance agrees on it."""
    return str(uuid.uuid5(_GUID_NAMESPACE, identity))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one subject: which schema id it names, and whether it is soft-deleted."""

    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False

    def key(self) -> Key:
        return schema_key(self.subject, self.version)

    def value(self) -> Value:
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "schema": self.schema,
            "deleted": self.deleted,
        }

    @classmethod
    def from_record(cls, subject: str, version: int, value: Mapping[str, Any]) -> SchemaVersion:
        schema_id = value.get("id")
        schema = value.get("schema")
        if not isinstance(schema_id, int) or schema_id < 1 or not isinstance(schema, str):
            raise MalformedRecordError(f"schema record without a valid id and schema: {value}")
        if value.get("schemaType", "AVRO") != "AVRO":
            raise MalformedRecordError(f"schema type {value.get('schemaType')!r} is not served")
        return cls(subject, version, schema_id, schema, bool(value.get("deleted", False)))


class RegistryState:
    """Subjects, versions, schemas by id and compatibility levels, rebuilt from records.

    Not thread-safe: the store applies records and answers reads under one lock.
    """

    def __init__(self) -> None:
        self._subjects: dict[str, dict[int, SchemaVersion]] = {}
        self._schemas: dict[int, ParsedSchema] = {}
        self._usages: dict[int, set[tuple[str, int]]] = {}
        self._ids_by_identity: dict[str, int] = {}
        self._ids_by_guid: dict[str, int] = {}
        self._levels: dict[str | None, CompatibilityLevel] = {}
        # Highest id ever seen, including hard-deleted ones, so ids are never reused
        # by this instance while it runs.
        self._max_id = 0

    # -- applying records ---------------------------------------------------------------

    def apply(self, key: Mapping[str, Any], value: Mapping[str, Any] | None) -> None:
        """Fold one topic record into the state; MalformedRecordError if it makes no sense."""
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(key, value)
        elif keytype == "CONFIG":
            self._apply_config(key, value)
        elif keytype == "DELETE_SUBJECT":
            self._apply_delete_subject(key, value)
        # NOOP markers and Confluent key types we do not serve (MODE, CONTEXT, ...)
        # carry no state of ours.

    def _apply_schema(self, key: Mapping[str, Any], value: Mapping[str, Any] | None) -> None:
        subject, version = key.get("subject"), key.get("version")
        if not isinstance(subject, str) or not isinstance(version, int):
            raise MalformedRecordError(f"schema key without subject and version: {key}")
        held = self.version(subject, version)
        if value is None:
            if held is not None:
                self._remove(held)
            return
        record = SchemaVersion.from_record(subject, version, value)
        self._max_id = max(self._max_id, record.schema_id)
        if held is not None and held.schema_id != record.schema_id:
            logger.warning(
                "ignoring %s version %d as id %d: already registered as id %d",
                subject,
                version,
                record.schema_id,
                held.schema_id,
            )
            return
        parsed = self._parse_for_id(record)
        if parsed is None:
            return
        self._subjects.setdefault(subject, {})[version] = record
        self._schemas.setdefault(record.schema_id, parsed)
        self._usages.setdefault(record.schema_id, set()).add((subject, version))
        self._ids_by_identity.setdefault(parsed.identity, record.schema_id)
        self._ids_by_guid.setdefault(schema_guid(parsed.identity), record.schema_id)

    def _parse_for_id(self, record: SchemaVersion) -> ParsedSchema | None:
        """The parsed schema of a record, or None if its id already names another schema."""
        known = self._schemas.get(record.schema_id)
        if known is not None and known.text == record.schema:
            return known
        try:
            parsed = parse_schema(record.schema)
        except RegistryError as exc:
            raise MalformedRecordError(f"schema record with an invalid schema: {exc}") from exc
        if known is not None and known.identity != parsed.identity:
            logger.warning(
                "ignoring %s version %d: id %d already names a different schema",
                record.subject,
                record.version,
                record.schema_id,
            )
            return None
        return parsed

    def _remove(self, record: SchemaVersion) -> None:
        versions = self._subjects[record.subject]
        del versions[record.version]
        if not versions:
            del self._subjects[record.subject]
        usages = self._usages.get(record.schema_id, set())
        usages.discard((record.subject, record.version))
        if usages:
            return
        self._usages.pop(record.schema_id, None)
        parsed = self._schemas.pop(record.schema_id, None)
        if parsed is None:
            return
        guid = schema_guid(parsed.identity)
        if self._ids_by_identity.get(parsed.identity) == record.schema_id:
            del self._ids_by_identity[parsed.identity]
            del self._ids_by_guid[guid]
            # A foreign writer may have stored the same schema under a second id.
            for other_id, other in sorted(self._schemas.items()):
                if other.identity == parsed.identity:
                    self._ids_by_identity[parsed.identity] = other_id
                    self._ids_by_guid[guid] = other_id
                    break

    def _apply_config(self, key: Mapping[str, Any], value: Mapping[str, Any] | None) -> None:
        subject = key.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise MalformedRecordError(f"config key with a non-string subject: {key}")
        if value is None:
            self._levels.pop(subject, None)
            return
        try:
            self._levels[subject] = parse_level(value.get("compatibilityLevel"))
        except RegistryError as exc:
            raise MalformedRecordError(f"config record with an unknown level: {value}") from exc

    def _apply_delete_subject(
        self, key: Mapping[str, Any], value: Mapping[str, Any] | None
    ) -> None:
        subject = key.get("subject")
        if value is None:
            return
        up_to = value.get("version")
        if not isinstance(subject, str) or not isinstance(up_to, int):
            raise MalformedRecordError(f"delete-subject record without subject/version: {value}")
        versions = self._subjects.get(subject, {})
        for number, record in versions.items():
            if number <= up_to and not record.deleted:
                versions[number] = replace(record, deleted=True)
        # Deleting a subject also drops its compatibility level, as Confluent does.
        self._levels.pop(subject, None)

    # -- queries ----------------------------------------------------------------------

    def subjects(self, *, include_deleted: bool = False) -> list[str]:
        """Subject names, sorted; soft-deleted subjects only with ``include_deleted``."""
        return sorted(
            subject
            for subject, versions in self._subjects.items()
            if include_deleted or any(not record.deleted for record in versions.values())
        )

    def versions(self, subject: str, *, include_deleted: bool = False) -> list[SchemaVersion]:
        """The versions of ``subject``, oldest first."""
        versions = self._subjects.get(subject, {})
        return [
            versions[number]
            for number in sorted(versions)
            if include_deleted or not versions[number].deleted
        ]

    def version(self, subject: str, version: int) -> SchemaVersion | None:
        """One version, soft-deleted or not."""
        return self._subjects.get(subject, {}).get(version)

    def next_version(self, subject: str) -> int:
        """The version number a new registration under ``subject`` gets.

        Soft-deleted versions keep their numbers, so numbering continues after them.
        """
        return max(self._subjects.get(subject, {}), default=0) + 1

    def schema(self, schema_id: int) -> ParsedSchema | None:
        return self._schemas.get(schema_id)

    def id_for(self, identity: str) -> int | None:
        return self._ids_by_identity.get(identity)

    def id_for_guid(self, guid: str) -> int | None:
        return self._ids_by_guid.get(guid)

    @property
    def next_id(self) -> int:
        return self._max_id + 1

    def usages(self, schema_id: int) -> list[SchemaVersion]:
        """The subject versions naming ``schema_id``, ordered by subject and version."""
        return [
            self._subjects[subject][version]
            for subject, version in sorted(self._usages.get(schema_id, ()))
        ]

    def configured_level(self, subject: str | None) -> CompatibilityLevel | None:
        """The level set for ``subject`` (None = the global level), if one was set."""
        return self._levels.get(subject)

    def effective_level(self, subject: str) -> CompatibilityLevel:
        """The level that governs ``subject``: its own, else the global one, else BACKWARD."""
        return self._levels.get(subject) or self._levels.get(None) or DEFAULT_LEVEL

    @property
    def schema_count(self) -> int:
        """Distinct schema ids named by at least one (possibly soft-deleted) version."""
        return len(self._schemas)
