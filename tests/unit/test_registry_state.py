"""The registry state as a fold over topic records, and schema canonicalisation."""

from __future__ import annotations

import json

import pytest

from ecoshare.registry.avro_schemas import parse_schema
from ecoshare.registry.compatibility import CompatibilityLevel
from ecoshare.registry.errors import InvalidSchemaError
from ecoshare.registry.state import (
    MalformedRecordError,
    RegistryState,
    SchemaVersion,
    config_key,
    config_value,
    delete_subject_key,
    delete_subject_value,
    schema_key,
)

STATUS = json.dumps(
    {
        "type": "record",
        "name": "StoreStatus",
        "fields": [{"name": "contact_phone", "type": "string", "classification": "personal"}],
    }
)
AVAILABILITY = json.dumps(
    {"type": "record", "name": "Availability", "fields": [{"name": "free", "type": "int"}]}
)


def put(state: RegistryState, record: SchemaVersion) -> None:
    state.apply(record.key(), record.value())


def test_whitespace_and_key_order_do_not_change_identity_but_attributes_do() -> None:
    compact = parse_schema(STATUS)
    spaced = parse_schema(json.dumps(json.loads(STATUS), indent=4, sort_keys=True))
    unclassified = json.loads(STATUS)
    del unclassified["fields"][0]["classification"]
    without_classification = parse_schema(json.dumps(unclassified))
    assert spaced.identity == compact.identity
    assert '"classification":"personal"' in spaced.text
    assert without_classification.identity != compact.identity


def test_a_primitive_has_one_identity_however_it_is_spelled() -> None:
    assert parse_schema('{"type": "string"}').identity == parse_schema('"string"').identity


@pytest.mark.parametrize(
    "text", ["not json", "{}", '{"type": "record", "name": "R"}', "NaN", '{"type": "strin"}']
)
def test_invalid_schemas_are_refused_with_42201(text: str) -> None:
    with pytest.raises(InvalidSchemaError) as caught:
        parse_schema(text)
    assert caught.value.error_code == 42201


def test_schema_records_build_subjects_versions_and_ids() -> None:
    state = RegistryState()
    put(state, SchemaVersion("status-value", 1, 1, STATUS))
    put(state, SchemaVersion("other-value", 1, 1, STATUS))
    put(state, SchemaVersion("status-value", 2, 2, AVAILABILITY))

    assert state.subjects() == ["other-value", "status-value"]
    assert [r.version for r in state.versions("status-value")] == [1, 2]
    assert state.id_for(parse_schema(STATUS).identity) == 1
    assert [(r.subject, r.version) for r in state.usages(1)] == [
        ("other-value", 1),
        ("status-value", 1),
    ]
    assert state.next_id == 3
    assert state.next_version("status-value") == 3
    assert state.schema_count == 2


def test_the_first_record_to_claim_a_subject_version_wins() -> None:
    state = RegistryState()
    put(state, SchemaVersion("s", 1, 1, STATUS))
    put(state, SchemaVersion("s", 1, 2, AVAILABILITY))
    held = state.version("s", 1)
    assert held is not None
    assert held.schema_id == 1
    assert state.schema(2) is None


def test_the_first_record_to_claim_an_id_wins() -> None:
    state = RegistryState()
    put(state, SchemaVersion("a", 1, 1, STATUS))
    put(state, SchemaVersion("b", 1, 1, AVAILABILITY))
    assert state.subjects() == ["a"]
    # The refused id is still never handed out again.
    assert state.next_id == 2


def test_soft_delete_of_a_subject_keeps_numbers_and_drops_its_level() -> None:
    state = RegistryState()
    put(state, SchemaVersion("s", 1, 1, STATUS))
    put(state, SchemaVersion("s", 2, 2, AVAILABILITY))
    state.apply(config_key("s"), config_value(CompatibilityLevel.NONE))
    state.apply(delete_subject_key("s"), delete_subject_value("s", 2))

    assert state.subjects() == []
    assert state.subjects(include_deleted=True) == ["s"]
    assert all(r.deleted for r in state.versions("s", include_deleted=True))
    assert state.configured_level("s") is None
    assert state.next_version("s") == 3
    # Soft-deleted versions still resolve their ids, as readers of old data need them.
    assert state.schema(1) is not None


def test_hard_delete_frees_the_version_but_never_the_id() -> None:
    state = RegistryState()
    put(state, SchemaVersion("s", 1, 1, STATUS, deleted=True))
    state.apply(schema_key("s", 1), None)
    assert state.subjects(include_deleted=True) == []
    assert state.schema(1) is None
    assert state.next_version("s") == 1
    assert state.next_id == 2


def test_levels_fall_back_from_subject_to_global_to_backward() -> None:
    state = RegistryState()
    assert state.effective_level("s") is CompatibilityLevel.BACKWARD
    state.apply(config_key(None), config_value(CompatibilityLevel.FULL))
    assert state.effective_level("s") is CompatibilityLevel.FULL
    state.apply(config_key("s"), config_value(CompatibilityLevel.NONE))
    assert state.effective_level("s") is CompatibilityLevel.NONE
    state.apply(config_key("s"), None)
    assert state.effective_level("s") is CompatibilityLevel.FULL


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ({"keytype": "SCHEMA", "subject": "s"}, {"id": 1, "schema": '"string"'}),
        (schema_key("s", 1), {"id": "one", "schema": '"string"'}),
        (schema_key("s", 1), {"id": 1, "schema": "not avro"}),
        (config_key(None), {"compatibilityLevel": "SIDEWAYS"}),
    ],
)
def test_malformed_records_are_reported_and_change_nothing(
    key: dict[str, object], value: dict[str, object]
) -> None:
    state = RegistryState()
    with pytest.raises(MalformedRecordError):
        state.apply(key, value)
    assert state.subjects(include_deleted=True) == []
    assert state.configured_level(None) is None


def test_unknown_key_types_are_ignored() -> None:
    state = RegistryState()
    state.apply({"keytype": "MODE", "magic": 0}, {"mode": "READONLY"})
    assert state.subjects(include_deleted=True) == []
