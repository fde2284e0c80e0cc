"""The registry's operations with Confluent's semantics, independent of HTTP.

Reads answer from the in-memory state; when a read misses, the store catches up once and
the read is retried, so a schema registered through another instance a moment ago is
found. Every mutation first catches up, then decides against the caught-up state, writes
one record and catches up again to confirm that its record is the one that counts.
Mutations in one process are serialised by a lock; between processes the topic's order
decides (see :mod:`ecoshare.registry.state`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import avro.schema

from ecoshare.registry.avro_schemas import AVRO, ParsedSchema, parse_schema
from ecoshare.registry.compatibility import (
    DEFAULT_LEVEL,
    CompatibilityLevel,
    compatibility_problems,
)
from ecoshare.registry.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    NotFoundError,
    SchemaNotFoundError,
    StoreError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from ecoshare.registry.state import (
    RegistryState,
    SchemaVersion,
    config_key,
    config_value,
    delete_subject_key,
    delete_subject_value,
    schema_guid,
)
from ecoshare.registry.store import KafkaSchemaStore

T = TypeVar("T")

VersionSpec = int | Literal["latest"]

_MAX_VERSION = 2**31 - 1
# A registration loses only to a concurrent registration by another instance. Two
# instances in lock-step could keep colliding, so a loser waits a random, growing moment
# before its next attempt; that breaks the symmetry within a few rounds.
_MAX_REGISTRATION_ATTEMPTS = 20
_BACKOFF_STEP_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class SchemaRequest:
    """The body of a register, look-up or compatibility request."""

    schema: str
    schema_type: str = AVRO

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> SchemaRequest:
        """Validate a request body; InvalidSchemaError (42201) says what is missing."""
        schema = body.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise InvalidSchemaError(
                "Invalid schema: the request needs a 'schema' field holding the schema as "
                "a JSON string"
            )
        schema_type = body.get("schemaType") or AVRO
        if not isinstance(schema_type, str) or schema_type.upper() != AVRO:
            raise InvalidSchemaError(
                f"Invalid schema: schemaType {schema_type!r} is not supported; this registry "
                "serves AVRO schemas only"
            )
        if body.get("references"):
            raise InvalidSchemaError(
                "Invalid schema: schema references are not supported by this registry; "
                "inline the referenced types"
            )
        return cls(schema=schema, schema_type=AVRO)

    def parse(self) -> ParsedSchema:
        return parse_schema(self.schema)


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A subject version together with its schema's guid."""

    subject: str
    version: int
    schema_id: int
    schema: str
    guid: str
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class SchemaById:
    schema_id: int
    schema: str
    guid: str


def parse_version(text: str) -> VersionSpec:
    """``"latest"``/``-1`` or a version in [1, 2^31-1]; else InvalidVersionError (42202)."""
    if text.lower() == "latest" or text == "-1":
        return "latest"
    try:
        number = int(text)
    except ValueError:
        raise InvalidVersionError(text) from None
    if not 1 <= number <= _MAX_VERSION:
        raise InvalidVersionError(text)
    return number


class SchemaRegistry:
    """Confluent Schema Registry operations over a started :class:`KafkaSchemaStore`."""

    def __init__(self, store: KafkaSchemaStore) -> None:
        self._store = store
        self._mutations = threading.Lock()

    # -- helpers ----------------------------------------------------------------------

    def _query(self, read: Callable[[RegistryState], T]) -> T:
        """Run ``read`` on the state; on a miss catch up once and run it again."""
        try:
            with self._store.read() as state:
                return read(state)
        except NotFoundError:
            self._store.catch_up()
            with self._store.read() as state:
                return read(state)

    @staticmethod
    def _registered(state: RegistryState, record: SchemaVersion) -> RegisteredSchema:
        parsed = state.schema(record.schema_id)
        guid = schema_guid(parsed.identity) if parsed is not None else ""
        return RegisteredSchema(
            subject=record.subject,
            version=record.version,
            schema_id=record.schema_id,
            schema=parsed.text if parsed is not None else record.schema,
            guid=guid,
            deleted=record.deleted,
        )

    @staticmethod
    def _resolve(
        state: RegistryState, subject: str, version: VersionSpec, *, include_deleted: bool
    ) -> SchemaVersion:
        """The version ``version`` of ``subject``: 40401 for the subject, 40402 for the version."""
        versions = state.versions(subject, include_deleted=include_deleted)
        if not versions:
            raise SubjectNotFoundError(subject)
        if version == "latest":
            return versions[-1]
        found = state.version(subject, version)
        if found is None or (found.deleted and not include_deleted):
            raise VersionNotFoundError(subject, version)
        return found

    # -- schemas ----------------------------------------------------------------------

    def register(self, subject: str, request: SchemaRequest) -> RegisteredSchema:
        """Register ``request`` under ``subject``, or return its existing registration.

        The same schema keeps its global id across subjects. Raises InvalidSchemaError
        (42201), IncompatibleSchemaError (409) or a StoreError.
        """
        parsed = request.parse()
        with self._mutations:
            for attempt in range(_MAX_REGISTRATION_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, _BACKOFF_STEP_SECONDS * attempt))
                self._store.catch_up()
                with self._store.read() as state:
                    for record in state.versions(subject):
                        known = state.schema(record.schema_id)
                        if known is not None and known.identity == parsed.identity:
                            return self._registered(state, record)
                    level = state.effective_level(subject)
                    previous = self._schemas_of(state, state.versions(subject))
                    schema_id = state.id_for(parsed.identity)
                    elsewhere = state.schema(schema_id) if schema_id is not None else None
                    candidate = SchemaVersion(
                        subject=subject,
                        version=state.next_version(subject),
                        schema_id=schema_id if schema_id is not None else state.next_id,
                        # The first spelling registered stays the stored one.
                        schema=elsewhere.text if elsewhere is not None else parsed.text,
                    )
                # Checked outside the state lock: transitive checks over a long history
                # would otherwise hold up the tailer and every reader.
                problems = compatibility_problems(parsed.avro, previous, level)
                if problems:
                    raise IncompatibleSchemaError(subject, problems)
                self._store.write(candidate.key(), candidate.value())
                self._store.catch_up()
                with self._store.read() as state:
                    held = state.version(subject, candidate.version)
                    # Ours only if the id also names our schema: a racing instance may
                    # have picked the same version and id for a different schema.
                    stored = state.schema(held.schema_id) if held is not None else None
                    if (
                        held is not None
                        and stored is not None
                        and stored.identity == parsed.identity
                    ):
                        return self._registered(state, held)
                if held is not None:
                    # Another instance took this version first and our record came later
                    # under the same key; compaction keeps only the last record per key,
                    # so write the winner again to keep it the last one.
                    self._store.write(held.key(), held.value())
                # A record refused because its id went to another schema meanwhile stays
                # refused on every replay; the next attempt takes a fresh id.
        raise StoreError(
            f"Error in the backend data store: registering under '{subject}' kept losing "
            "to concurrent registrations; retry"
        )

    @staticmethod
    def _schemas_of(
        state: RegistryState, versions: list[SchemaVersion]
    ) -> dict[int, avro.schema.Schema]:
        """The parsed schemas of ``versions``, keyed by version number."""
        return {
            record.version: known.avro
            for record in versions
            if (known := state.schema(record.schema_id)) is not None
        }

    def lookup(
        self, subject: str, request: SchemaRequest, *, include_deleted: bool = False
    ) -> RegisteredSchema:
        """The registration of ``request`` under ``subject``: 40401 or 40403 if there is none."""
        parsed = request.parse()

        def find(state: RegistryState) -> RegisteredSchema:
            versions = state.versions(subject, include_deleted=include_deleted)
            if not versions:
                raise SubjectNotFoundError(subject)
            schema_id = state.id_for(parsed.identity)
            # Prefer a live version over a soft-deleted one, then the newest.
            matches = sorted(
                (record for record in versions if record.schema_id == schema_id),
                key=lambda record: (not record.deleted, record.version),
            )
            if not matches:
                raise SchemaNotFoundError("Schema not found")
            return self._registered(state, matches[-1])

        return self._query(find)

    def schema_by_id(self, schema_id: int) -> SchemaById:
        def find(state: RegistryState) -> SchemaById:
            parsed = state.schema(schema_id)
            if parsed is None:
                raise SchemaNotFoundError(f"Schema {schema_id} not found")
            return SchemaById(schema_id, parsed.text, schema_guid(parsed.identity))

        return self._query(find)

    def schema_by_guid(self, guid: str) -> SchemaById:
        def find(state: RegistryState) -> SchemaById:
            schema_id = state.id_for_guid(guid)
            parsed = state.schema(schema_id) if schema_id is not None else None
            if schema_id is None or parsed is None:
                raise SchemaNotFoundError(f"Schema {guid} not found")
            return SchemaById(schema_id, parsed.text, guid)

        return self._query(find)

    def schema_usages(
        self, schema_id: int, *, include_deleted: bool = False
    ) -> list[SchemaVersion]:
        """The subject versions naming ``schema_id``; 40403 if the id is unknown."""

        def find(state: RegistryState) -> list[SchemaVersion]:
            if state.schema(schema_id) is None:
                raise SchemaNotFoundError(f"Schema {schema_id} not found")
            return [r for r in state.usages(schema_id) if include_deleted or not r.deleted]

        return self._query(find)

    # -- subjects ---------------------------------------------------------------------

    def subjects(
        self, *, prefix: str = "", include_deleted: bool = False, deleted_only: bool = False
    ) -> list[str]:
        with self._store.read() as state:
            everything = state.subjects(include_deleted=True)
            live = set(state.subjects())
        if deleted_only:
            chosen = [subject for subject in everything if subject not in live]
        elif include_deleted:
            chosen = everything
        else:
            chosen = sorted(live)
        return [subject for subject in chosen if subject.startswith(prefix)]

    def versions(
        self, subject: str, *, include_deleted: bool = False, deleted_only: bool = False
    ) -> list[int]:
        def find(state: RegistryState) -> list[int]:
            every = state.versions(subject, include_deleted=True)
            if deleted_only:
                chosen = [record for record in every if record.deleted]
            elif include_deleted:
                chosen = every
            else:
                chosen = [record for record in every if not record.deleted]
            if not every or not (chosen or deleted_only):
                raise SubjectNotFoundError(subject)
            return [record.version for record in chosen]

        return self._query(find)

    def version(
        self, subject: str, version: VersionSpec, *, include_deleted: bool = False
    ) -> RegisteredSchema:
        def find(state: RegistryState) -> RegisteredSchema:
            record = self._resolve(state, subject, version, include_deleted=include_deleted)
            return self._registered(state, record)

        return self._query(find)

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every live version, or hard-delete a soft-deleted subject.

        Returns the version numbers deleted.
        """
        with self._mutations:
            self._store.catch_up()
            with self._store.read() as state:
                every = state.versions(subject, include_deleted=True)
                live = [record for record in every if not record.deleted]
            if not every:
                raise SubjectNotFoundError(subject)
            if permanent:
                if live:
                    raise SubjectNotSoftDeletedError(subject)
                for record in every:
                    self._store.write(record.key(), None)
                # Tombstone the delete marker and the level too: once compaction drops
                # the marker, an older level record would otherwise come back.
                self._store.write(delete_subject_key(subject), None)
                self._store.write(config_key(subject), None)
                deleted = every
            else:
                if not live:
                    raise SubjectSoftDeletedError(subject)
                self._store.write(
                    delete_subject_key(subject), delete_subject_value(subject, live[-1].version)
                )
                deleted = live
            self._store.catch_up()
        return [record.version for record in deleted]

    def delete_version(self, subject: str, version: VersionSpec, *, permanent: bool = False) -> int:
        """Soft-delete one version, or hard-delete a soft-deleted one; returns its number."""
        with self._mutations:
            self._store.catch_up()
            with self._store.read() as state:
                record = self._resolve(state, subject, version, include_deleted=permanent)
            if permanent:
                if not record.deleted:
                    raise VersionNotSoftDeletedError(subject, record.version)
                self._store.write(record.key(), None)
            else:
                if record.deleted:
                    raise VersionSoftDeletedError(subject, record.version)
                deleted = replace(record, deleted=True)
                self._store.write(deleted.key(), deleted.value())
            self._store.catch_up()
        return record.version

    # -- compatibility ----------------------------------------------------------------

    def compatibility_problems(
        self, subject: str, request: SchemaRequest, version: VersionSpec | None
    ) -> list[str]:
        """Why ``request`` could not be registered under ``subject``; empty if it could.

        ``version`` None checks against the versions the subject's level covers (all for
        transitive levels); a version (or "latest") checks against that one alone.
        """
        parsed = request.parse()

        def gather(
            state: RegistryState,
        ) -> tuple[CompatibilityLevel, dict[int, avro.schema.Schema]]:
            live = state.versions(subject)
            if version is None or (version == "latest" and not live):
                against = live
            else:
                against = [self._resolve(state, subject, version, include_deleted=False)]
            return state.effective_level(subject), self._schemas_of(state, against)

        level, previous = self._query(gather)
        return compatibility_problems(parsed.avro, previous, level)

    def global_level(self) -> CompatibilityLevel:
        with self._store.read() as state:
            return state.configured_level(None) or DEFAULT_LEVEL

    def subject_level(self, subject: str, *, default_to_global: bool = False) -> CompatibilityLevel:
        """The subject's own level; 40408 if it has none, unless ``default_to_global``."""
        with self._store.read() as state:
            level = state.configured_level(subject)
            if level is None and default_to_global:
                level = state.configured_level(None) or DEFAULT_LEVEL
        if level is None:
            raise SubjectConfigNotFoundError(subject)
        return level

    def set_level(self, subject: str | None, level: CompatibilityLevel) -> CompatibilityLevel:
        """Set the level of ``subject`` (None = the global level)."""
        with self._mutations:
            self._store.write(config_key(subject), config_value(level))
            self._store.catch_up()
        return level

    def delete_level(self, subject: str | None) -> CompatibilityLevel:
        """Drop the level of ``subject`` (None = reset the global one); returns the old level."""
        with self._mutations:
            self._store.catch_up()
            with self._store.read() as state:
                old = state.configured_level(subject)
            if old is None and subject is not None:
                raise SubjectConfigNotFoundError(subject)
            self._store.write(config_key(subject), None)
            self._store.catch_up()
        return old or DEFAULT_LEVEL

    def schema_count(self) -> int:
        return self._store.schema_count()
