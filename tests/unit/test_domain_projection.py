"""Field transforms, record projection and the projected schema."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.config.settings import REPO_ROOT
from ecoshare.domain.agreements import Agreement, FieldAction, FieldRule
from ecoshare.domain.errors import FieldRuleMismatchError, HashKeyMissingError
from ecoshare.domain.projection import (
    agreement_schema_problems,
    apply_field_rule,
    canonical_text,
    generalise_number,
    generalise_timestamp,
    hash_value,
    mask_value,
    project_record,
    projected_schema,
    subscriber_hash_key,
)

CATALOG = load_catalog(REPO_ROOT / "schemas")
STORE = CATALOG.event_schema("StoreStatusChanged")
STORE_CLASSES = CATALOG.classification("StoreStatusChanged")
T0 = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)
KEY = subscriber_hash_key(b"secret", "carrier-x")


def _agreement(fields: dict[str, Any], **changes: Any) -> Agreement:
    data: dict[str, Any] = {
        "agreement_id": "agr-1",
        "version": 3,
        "publishers": ["*"],
        "subscriber": "carrier-x",
        "event_types": ["StoreStatusChanged"],
        "purpose": "routing",
        "valid_from": T0,
        "fields": fields,
    }
    data.update(changes)
    return Agreement.model_validate(data)


RECORD: dict[str, Any] = {
    "event_id": "0b0a5f4e-6a43-4f43-9d0e-8f4c6f1c9a11",
    "publisher_id": "shop-a",
    "location_id": "sp-0001",
    "location_name": "Primera Centrum",
    "status": "CLOSED",
    "reason": "lockdown",
    "opening_hours_today": None,
    "effective_from": datetime(2020, 3, 16, 9, 41, 7, 123000, tzinfo=UTC),
    "effective_until": None,
    "street": "Damrak",
    "house_number": "1",
    "postal_code": "1012 AB",
    "city": "Amsterdam",
    "latitude": 52.374526,
    "longitude": 4.897912,
    "contact_subject_id": "owner-anna",
    "contact_name": "Anna de Vries",
    "contact_phone": "+31 6 12345678",
    "occurred_at": T0,
    "published_at": T0,
}


# --- transforms -----------------------------------------------------------------------


def test_mask_keeps_the_last_characters_and_the_length() -> None:
    assert mask_value("+31 6 12345678", 4) == "**********5678"
    assert mask_value("secret", 0) == "******"
    assert mask_value("abc", 3) == "***"
    assert mask_value("abc", 10) == "***"
    assert mask_value("", 2) == ""
    assert mask_value(1234, 2) == "**34"


def test_canonical_text_of_each_type() -> None:
    assert canonical_text("x") == "x"
    assert canonical_text(True) == "true"
    assert canonical_text(12) == "12"
    assert canonical_text(0.1) == "0.1"
    assert canonical_text(T0) == "1584345600000"
    with pytest.raises(FieldRuleMismatchError):
        canonical_text(b"bytes")


def test_hash_is_keyed_hmac_and_differs_per_subscriber() -> None:
    other = subscriber_hash_key(b"secret", "carrier-y")
    assert len(KEY) == 32
    assert other != KEY
    assert subscriber_hash_key(b"secret", "carrier-x") == KEY
    assert subscriber_hash_key(b"other-secret", "carrier-x") != KEY
    digest = hash_value("+31 6 12345678", KEY)
    assert len(digest) == 64
    assert digest == digest.lower()
    assert digest == hash_value("+31 6 12345678", KEY)
    assert digest != hash_value("+31 6 12345678", other)
    assert hash_value(T0, KEY) == hash_value("1584345600000", KEY)


def test_generalise_number_rounds_and_keeps_the_type() -> None:
    assert generalise_number(52.374526, 2) == 52.37
    assert isinstance(generalise_number(52.374526, 0), float)
    assert generalise_number(1234, -2) == 1200
    assert isinstance(generalise_number(1234, 1), int)
    assert generalise_number(float("inf"), 2) == float("inf")
    with pytest.raises(FieldRuleMismatchError):
        generalise_number("52.1", 2)
    with pytest.raises(FieldRuleMismatchError):
        generalise_number(True, 2)


def test_generalise_timestamp_truncates_to_utc_hour_or_day() -> None:
    moment = datetime(2020, 3, 16, 9, 41, 7, 123000, tzinfo=UTC)
    assert generalise_timestamp(moment, "hour") == datetime(2020, 3, 16, 9, tzinfo=UTC)
    assert generalise_timestamp(moment, "day") == datetime(2020, 3, 16, tzinfo=UTC)
    millis = 1_584_351_667_123
    assert generalise_timestamp(millis, "hour") == 1_584_349_200_000
    assert generalise_timestamp(millis, "day") == 1_584_316_800_000
    assert generalise_timestamp(-1, "hour") == -3_600_000
    with pytest.raises(FieldRuleMismatchError):
        generalise_timestamp("2020-03-16", "day")  # type: ignore[call-overload]


def test_none_stays_none_under_every_rule() -> None:
    for rule in (
        FieldRule(action=FieldAction.DELIVER),
        FieldRule(action=FieldAction.MASK, keep_last=2),
        FieldRule(action=FieldAction.HASH),
        FieldRule(action=FieldAction.GENERALISE, decimals=1),
        FieldRule(action=FieldAction.GENERALISE, truncate_to="day"),
    ):
        assert apply_field_rule(None, rule, KEY) is None


def test_a_hash_rule_without_key_fails_whatever_the_value() -> None:
    with pytest.raises(HashKeyMissingError):
        apply_field_rule(None, FieldRule(action=FieldAction.HASH), None)


# --- records --------------------------------------------------------------------------


def test_project_record_holds_exactly_the_granted_fields_in_catalog_order() -> None:
    agreement = _agreement(
        {
            "contact_phone": {"action": "mask", "keep_last": 3},
            "status": "deliver",
            "latitude": {"action": "generalise", "decimals": 2},
            "effective_from": {"action": "generalise", "truncate_to": "hour"},
            "location_id": "hash",
            "city": "drop",
            "colour": "deliver",
        }
    )
    projected = project_record(RECORD, agreement, STORE_CLASSES, {"contact_phone"}, KEY)
    assert projected == {
        "location_id": hash_value("sp-0001", KEY),
        "status": "CLOSED",
        "effective_from": datetime(2020, 3, 16, 9, tzinfo=UTC),
        "latitude": 52.37,
        "contact_phone": "***********678",
    }
    assert list(projected) == [
        "location_id",
        "status",
        "effective_from",
        "latitude",
        "contact_phone",
    ]


def test_personal_fields_without_consent_are_null() -> None:
    agreement = _agreement({"contact_name": "deliver", "contact_phone": "hash", "city": "deliver"})
    projected = project_record(RECORD, agreement, STORE_CLASSES, set(), KEY)
    assert projected == {"city": "Amsterdam", "contact_name": None, "contact_phone": None}
    allowed = project_record(RECORD, agreement, STORE_CLASSES, {"contact_name"}, KEY)
    assert allowed["contact_name"] == "Anna de Vries"
    assert allowed["contact_phone"] is None


def test_nothing_granted_projects_an_empty_record() -> None:
    assert project_record(RECORD, _agreement({}), STORE_CLASSES, {"contact_name"}, None) == {}


# --- schemas --------------------------------------------------------------------------


def _avro(schema: dict[str, Any]) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(schema))


def _compatible(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(_avro(reader), _avro(writer))
    return result.compatibility is SchemaCompatibilityType.compatible


def _full_compatible(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return _compatible(new, old) and _compatible(old, new)


FIELDS: dict[str, Any] = {
    "status": "deliver",
    "effective_until": "deliver",
    "latitude": {"action": "generalise", "decimals": 2},
    "occurred_at": {"action": "generalise", "truncate_to": "hour"},
    "contact_phone": {"action": "mask", "keep_last": 3},
    "location_id": "hash",
    "reason": "drop",
}


def test_projected_schema_has_granted_fields_in_catalog_order_with_defaults() -> None:
    schema = projected_schema(STORE, _agreement(FIELDS), "carrier-x")
    fastavro.parse_schema(schema)
    assert schema["name"] == "StoreStatusChanged"
    assert schema["namespace"] == "nl.ecoshare.deliver"
    assert schema["agreement_id"] == "agr-1"
    assert schema["agreement_version"] == 3
    assert schema["subscriber_id"] == "carrier-x"
    by_name = {field["name"]: field for field in schema["fields"]}
    assert list(by_name) == [
        "location_id", "status", "effective_until", "latitude", "contact_phone", "occurred_at",
    ]  # fmt: skip
    for field in schema["fields"]:
        assert "default" in field
        assert field["doc"]
        assert field["classification"] == STORE_CLASSES[field["name"]].value
    # Published types are kept; hash and mask make text; personal and nullable stay nullable.
    assert by_name["location_id"]["type"] == "string"
    assert by_name["location_id"]["default"] == ""
    assert by_name["contact_phone"]["type"] == ["null", "string"]
    assert by_name["contact_phone"]["default"] is None
    assert by_name["latitude"]["type"] == "double"
    assert by_name["effective_until"]["type"] == [
        "null", {"type": "long", "logicalType": "timestamp-millis"},
    ]  # fmt: skip
    status = by_name["status"]["type"]
    assert status["name"] == "StoreStatus"
    assert status["namespace"] == "nl.ecoshare.events"
    assert by_name["status"]["default"] == "OPEN"
    assert by_name["latitude"]["transform"] == {"action": "generalise", "decimals": 2}
    assert "transform" not in by_name["status"]


def test_projected_records_encode_with_the_projected_schema() -> None:
    agreement = _agreement(FIELDS)
    schema = fastavro.parse_schema(projected_schema(STORE, agreement, "carrier-x"))
    projected = project_record(RECORD, agreement, STORE_CLASSES, {"contact_phone"}, KEY)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, projected)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema, None) == projected


def test_adding_or_removing_a_granted_field_is_full_compatible() -> None:
    before = projected_schema(STORE, _agreement(FIELDS), "carrier-x")
    added = projected_schema(
        STORE, _agreement({**FIELDS, "city": "deliver", "contact_name": "hash"}), "carrier-x"
    )
    removed = projected_schema(
        STORE, _agreement({k: v for k, v in FIELDS.items() if k != "status"}), "carrier-x"
    )
    assert _full_compatible(before, added)
    assert _full_compatible(before, removed)
    assert _full_compatible(added, removed)


def test_changing_a_field_from_deliver_to_hash_is_not_compatible() -> None:
    before = projected_schema(STORE, _agreement({"latitude": "deliver"}), "carrier-x")
    after = projected_schema(STORE, _agreement({"latitude": "hash"}), "carrier-x")
    assert not _full_compatible(before, after)


def test_named_types_stay_defined_once() -> None:
    schema = {
        "type": "record",
        "name": "Twice",
        "namespace": "nl.ecoshare.events",
        "fields": [
            {"name": "a", "type": {"type": "enum", "name": "Colour", "symbols": ["RED"]}},
            {"name": "b", "type": ["null", "Colour"], "default": None},
            {"name": "c", "type": "nl.ecoshare.events.Colour"},
        ],
    }
    only_b = projected_schema(schema, _agreement({"b": "deliver"}), "carrier-x")
    assert only_b["fields"][0]["type"][1]["type"] == "enum"
    both = projected_schema(schema, _agreement({"b": "deliver", "c": "deliver"}), "carrier-x")
    assert both["fields"][1]["type"] == "nl.ecoshare.events.Colour"
    assert both["fields"][1]["default"] == "RED"
    fastavro.parse_schema(only_b)
    fastavro.parse_schema(both)


def test_rules_that_do_not_fit_the_field_type_are_refused() -> None:
    with pytest.raises(FieldRuleMismatchError, match=r"'city'.*number"):
        projected_schema(
            STORE, _agreement({"city": {"action": "generalise", "decimals": 1}}), "carrier-x"
        )
    with pytest.raises(FieldRuleMismatchError, match=r"'latitude'.*timestamp"):
        projected_schema(
            STORE,
            _agreement({"latitude": {"action": "generalise", "truncate_to": "day"}}),
            "carrier-x",
        )


def test_agreement_schema_problems_reports_what_would_go_wrong() -> None:
    agreement = _agreement(
        {"colour": "deliver", "city": {"action": "generalise", "decimals": 1}},
        event_types=["StoreStatusChanged", "LocationAvailability", "Weather"],
        row_filters=[
            {"field": "status", "op": "equals", "value": "CLOSED"},
            {"field": "contact_name", "op": "prefix", "prefixes": ["A"]},
        ],
    )
    problems = agreement_schema_problems(agreement, CATALOG.event_schemas())
    text = "\n".join(problems)
    assert "'Weather' is not in the catalog" in text
    assert "'colour' is in none of" in text
    assert "'status' is not in LocationAvailability" in text
    assert "personal field 'contact_name'" in text
    assert "'city' of StoreStatusChanged" in text
    assert agreement_schema_problems(_agreement(FIELDS), CATALOG.event_schemas()) == []
