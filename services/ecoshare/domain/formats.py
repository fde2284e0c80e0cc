"""Value formats the event catalog documents on string fields, and their checks.

A catalog field may carry ``"format": "<name>"`` beside its ``doc`` and
``classification`` (a custom Avro attribute: Avro readers ignore it). Publishing
(the SDK, the HTTP API and ``ecoshare publish``) refuses a value that does not match
its field's format, naming the field and the expected form, before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FORMAT_ATTRIBUTE = "format"


@dataclass(frozen=True, slots=True)
class ValueFormat:
    """A named string format: its pattern, how to say it, and an example."""

    name: str
    pattern: re.Pattern[str]
    canonical: str
    """How a match is written canonically (``re.Match.expand`` template)."""
    description: str
    example: str

    def normalise(self, value: str) -> str | None:
        """``value`` written canonically, or None when it does not match the format."""
        match = self.pattern.fullmatch(value)
        return None if match is None else match.expand(self.canonical)


FORMATS: Mapping[str, ValueFormat] = {
    "nl-postcode": ValueFormat(
        name="nl-postcode",
        # Dutch postcodes never start with 0; "1234AB" is accepted and written "1234 AB",
        # as the domain model (ecoshare.domain.events.PostalCode) does.
        pattern=re.compile(r"([1-9][0-9]{3}) ?([A-Z]{2})"),
        canonical=r"\1 \2",
        description="a Dutch postcode: four digits (not starting with 0), a space and "
        'two capital letters, e.g. "1234 AB"',
        example="1012 LG",
    ),
}


def format_of(field: Mapping[str, Any]) -> ValueFormat | None:
    """The format a catalog field documents; KeyError for an unknown format name."""
    name = field.get(FORMAT_ATTRIBUTE)
    return None if name is None else FORMATS[str(name)]


def conform(
    schema: Mapping[str, Any], record: Mapping[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``record`` with every formatted value written canonically, and (field path,
    message) for every value that breaks its field's format.

    ``schema`` is the record's Avro schema as the catalog holds it; nested records are
    checked too (``address.postal_code``). Values that are not text are left to the
    Avro validation.
    """
    problems: list[tuple[str, str]] = []
    return _conform_record(schema, record, "", problems), problems


def _conform_record(
    schema: Mapping[str, Any],
    record: Mapping[str, Any],
    path: str,
    problems: list[tuple[str, str]],
) -> dict[str, Any]:
    conformed = dict(record)
    for field in schema.get("fields", ()):
        name = field["name"]
        if name not in record:
            continue
        value = record[name]
        field_path = f"{path}.{name}" if path else name
        value_format = format_of(field)
        if value_format is not None and isinstance(value, str):
            canonical = value_format.normalise(value)
            if canonical is None:
                problems.append((field_path, f"{value!r} is not {value_format.description}"))
            else:
                conformed[name] = canonical
        if isinstance(value, Mapping):
            for nested in _records_in(field["type"]):
                conformed[name] = _conform_record(nested, value, field_path, problems)
    return conformed


def _records_in(avro_type: Any) -> list[Mapping[str, Any]]:
    if isinstance(avro_type, list):
        return [record for branch in avro_type for record in _records_in(branch)]
    if isinstance(avro_type, Mapping) and avro_type.get("type") == "record":
        return [avro_type]
    return []
