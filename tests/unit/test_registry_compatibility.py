"""Schema evolution rules per compatibility level, on plain parsed Avro schemas."""

from __future__ import annotations

import json
from typing import Any

import avro.schema
import pytest

from ecoshare.registry.compatibility import (
    CompatibilityLevel,
    compatibility_problems,
    parse_level,
    reader_writer_problems,
)
from ecoshare.registry.errors import InvalidCompatibilityLevelError

Level = CompatibilityLevel


def record(*fields: dict[str, Any]) -> avro.schema.Schema:
    return avro.schema.parse(
        json.dumps({"type": "record", "name": "StoreStatus", "fields": list(fields)})
    )


LOCATION = {"name": "location_id", "type": "string"}
STATUS = {"name": "status", "type": "string"}
CITY_WITH_DEFAULT = {"name": "city", "type": "string", "default": "unknown"}
CITY_WITHOUT_DEFAULT = {"name": "city", "type": "string"}

V1 = record(LOCATION, STATUS)
V1_PLUS_CITY_WITH_DEFAULT = record(LOCATION, STATUS, CITY_WITH_DEFAULT)
V1_PLUS_CITY_WITHOUT_DEFAULT = record(LOCATION, STATUS, CITY_WITHOUT_DEFAULT)
V1_WITHOUT_STATUS = record(LOCATION)


def compatible(candidate: avro.schema.Schema, *previous: avro.schema.Schema, level: Level) -> bool:
    history = dict(enumerate(previous, start=1))
    return not compatibility_problems(candidate, history, level)


@pytest.mark.parametrize(
    ("candidate", "level", "expected"),
    [
        # Adding a field with a default: new readers fill it in, old readers skip it.
        (V1_PLUS_CITY_WITH_DEFAULT, Level.BACKWARD, True),
        (V1_PLUS_CITY_WITH_DEFAULT, Level.FORWARD, True),
        (V1_PLUS_CITY_WITH_DEFAULT, Level.FULL, True),
        # Adding a field without a default: the new reader has nothing to fill in.
        (V1_PLUS_CITY_WITHOUT_DEFAULT, Level.BACKWARD, False),
        (V1_PLUS_CITY_WITHOUT_DEFAULT, Level.FORWARD, True),
        (V1_PLUS_CITY_WITHOUT_DEFAULT, Level.FULL, False),
        # Removing a field without a default: old readers miss it in new data.
        (V1_WITHOUT_STATUS, Level.BACKWARD, True),
        (V1_WITHOUT_STATUS, Level.FORWARD, False),
        (V1_WITHOUT_STATUS, Level.FULL, False),
        (V1_WITHOUT_STATUS, Level.NONE, True),
    ],
)
def test_adding_and_removing_fields_per_level(
    candidate: avro.schema.Schema, level: Level, expected: bool
) -> None:
    assert compatible(candidate, V1, level=level) is expected


def test_removing_a_field_that_had_a_default_is_fully_compatible() -> None:
    assert compatible(V1, V1_PLUS_CITY_WITH_DEFAULT, level=Level.FULL)


def test_changing_a_field_type_to_an_unrelated_type_is_incompatible_both_ways() -> None:
    status_as_int = record(LOCATION, {"name": "status", "type": "int"})
    assert not compatible(status_as_int, V1, level=Level.BACKWARD)
    assert not compatible(status_as_int, V1, level=Level.FORWARD)
    assert compatible(status_as_int, V1, level=Level.NONE)


def test_widening_int_to_long_is_backward_but_not_forward_compatible() -> None:
    count_int = record({"name": "free_slots", "type": "int"})
    count_long = record({"name": "free_slots", "type": "long"})
    assert compatible(count_long, count_int, level=Level.BACKWARD)
    assert not compatible(count_long, count_int, level=Level.FORWARD)


def test_adding_an_enum_symbol_is_backward_but_not_forward_compatible() -> None:
    def with_symbols(*symbols: str) -> avro.schema.Schema:
        return record(
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": symbols}}
        )

    two, three = with_symbols("OPEN", "CLOSED"), with_symbols("OPEN", "CLOSED", "LIMITED")
    assert compatible(three, two, level=Level.BACKWARD)
    assert not compatible(three, two, level=Level.FORWARD)


def test_non_transitive_levels_look_only_at_the_latest_version() -> None:
    # v1 has no city; v2 adds it with a default; v3 drops the default. v3 reads v2 data
    # (v2 always wrote city) but not v1 data (no city, no default to fill in).
    history = (V1, V1_PLUS_CITY_WITH_DEFAULT)
    assert compatible(V1_PLUS_CITY_WITHOUT_DEFAULT, *history, level=Level.BACKWARD)
    assert not compatible(V1_PLUS_CITY_WITHOUT_DEFAULT, *history, level=Level.BACKWARD_TRANSITIVE)


def test_forward_transitive_checks_every_earlier_reader() -> None:
    # v1 needs status; v2 gave status a default; v3 removes status. v2 can read v3
    # data, v1 cannot.
    status_with_default = {"name": "status", "type": "string", "default": "OPEN"}
    history = (V1, record(LOCATION, status_with_default))
    assert compatible(V1_WITHOUT_STATUS, *history, level=Level.FORWARD)
    assert not compatible(V1_WITHOUT_STATUS, *history, level=Level.FORWARD_TRANSITIVE)
    assert not compatible(V1_WITHOUT_STATUS, *history, level=Level.FULL_TRANSITIVE)


def test_a_first_version_is_compatible_under_every_level() -> None:
    for level in Level:
        assert compatible(V1, level=level)


def test_problems_name_the_version_and_the_offending_field() -> None:
    problems = compatibility_problems(
        V1_PLUS_CITY_WITHOUT_DEFAULT, {7: V1}, CompatibilityLevel.BACKWARD
    )
    assert len(problems) == 1
    assert "version 7" in problems[0]
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in problems[0]
    assert "city" in problems[0]


def test_reader_writer_problems_are_empty_for_identical_schemas() -> None:
    assert reader_writer_problems(V1, V1) == []


@pytest.mark.parametrize("text", ["BACKWARD", "backward", " full_transitive ", "None"])
def test_levels_parse_in_any_letter_case(text: str) -> None:
    assert parse_level(text).value == text.strip().upper()


@pytest.mark.parametrize("value", ["SIDEWAYS", "", None, 3])
def test_unknown_levels_are_refused_with_42203(value: object) -> None:
    with pytest.raises(InvalidCompatibilityLevelError) as caught:
        parse_level(value)
    assert caught.value.error_code == 42203
