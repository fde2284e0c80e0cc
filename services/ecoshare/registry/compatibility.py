"""Schema evolution rules: which new versions a subject accepts, per compatibility level.

Pure functions over parsed Avro schemas; the reader/writer resolution itself is Avro's
own ``ReaderWriterCompatibilityChecker``, so the verdicts match what Avro readers do.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from ecoshare.registry.errors import InvalidCompatibilityLevelError


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels.

    BACKWARD: the new schema reads data written with the previous one (consumers upgrade
    first). FORWARD: the previous schema reads data written with the new one (producers
    upgrade first). FULL: both. ``_TRANSITIVE``: against every earlier version, not just
    the latest. NONE: anything goes.
    """

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def new_must_read_old(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def old_must_read_new(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD


def parse_level(value: object) -> CompatibilityLevel:
    """The level named by ``value`` (any letter case), or InvalidCompatibilityLevelError."""
    if isinstance(value, str):
        try:
            return CompatibilityLevel(value.strip().upper())
        except ValueError:
            pass
    raise InvalidCompatibilityLevelError(value)


def reader_writer_problems(reader: avro.schema.Schema, writer: avro.schema.Schema) -> list[str]:
    """Why ``reader`` cannot decode data written with ``writer``; empty when it can."""
    # The checker memoises by object identity, so each pair gets a fresh one.
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    kinds = ", ".join(sorted({kind.value.upper() for kind in result.incompatibilities}))
    locations = ", ".join(sorted(result.locations))
    details = "; ".join(sorted(result.messages))
    return [f"{kinds} at {locations}: {details}"]


def compatibility_problems(
    candidate: avro.schema.Schema,
    previous: Mapping[int, avro.schema.Schema],
    level: CompatibilityLevel,
) -> list[str]:
    """Why ``candidate`` may not follow the ``previous`` schemas (keyed by version) under ``level``.

    An empty list means the candidate is acceptable. Non-transitive levels look only at
    the highest version in ``previous``; transitive levels look at all of them.
    """
    if level is CompatibilityLevel.NONE or not previous:
        return []
    versions = sorted(previous)
    if not level.transitive:
        versions = versions[-1:]
    problems: list[str] = []
    for version in versions:
        earlier = previous[version]
        if level.new_must_read_old:
            problems.extend(
                f"the new schema cannot read data written with version {version}: {problem}"
                for problem in reader_writer_problems(candidate, earlier)
            )
        if level.old_must_read_new:
            problems.extend(
                f"version {version} cannot read data written with the new schema: {problem}"
                for problem in reader_writer_problems(earlier, candidate)
            )
    return problems
