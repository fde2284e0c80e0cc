"""The catalog loads, every field is classified and documented, and models match schemas."""

from __future__ import annotations

import io
import json
import shutil
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecoshare.catalog.event_catalog import CatalogError, load_catalog
from ecoshare.config.settings import REPO_ROOT
from ecoshare.config.topics import EVENT_TYPES
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.classification import Classification
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.events import EVENT_MODELS, CatalogEvent
from ecoshare.domain.partners import Partner
from ecoshare.errors import EcoshareError
from tests import strategies

SCHEMAS = REPO_ROOT / "schemas"
CATALOG = load_catalog(SCHEMAS)


def _round_trip(schema: Mapping[str, Any], record: Mapping[str, Any]) -> Any:
    parsed = fastavro.parse_schema(dict(schema), _write_hint=False)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, dict(record))
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed, None)


def _all_fields(avro_type: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(avro_type, list):
        for branch in avro_type:
            yield from _all_fields(branch)
    elif isinstance(avro_type, Mapping):
        if avro_type.get("type") == "record":
            for field in avro_type["fields"]:
                yield field
                yield from _all_fields(field["type"])
        elif avro_type.get("type") == "array":
            yield from _all_fields(avro_type["items"])
        elif avro_type.get("type") == "map":
            yield from _all_fields(avro_type["values"])


def _is_nullable_schema(field: Mapping[str, Any]) -> bool:
    return isinstance(field["type"], list) and "null" in field["type"]


def _is_optional_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(annotation)
    return False


def test_catalog_holds_every_platform_event_type() -> None:
    assert set(CATALOG.event_types) == set(EVENT_TYPES)
    assert CATALOG.control_names == ("ConsentRecord", "DataSharingAgreement", "Partner")
    for event_type in EVENT_TYPES:
        assert CATALOG.version(event_type) == 1
        assert CATALOG.event(event_type).parsed["name"] == f"nl.ecoshare.events.{event_type}"


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*/*.avsc")), ids=lambda path: path.name)
def test_every_field_has_a_classification_and_a_doc(path: Path) -> None:
    schema = json.loads(path.read_text())
    fields = list(_all_fields(schema))
    assert fields
    for field in fields:
        assert field["classification"] in {item.value for item in Classification}, field["name"]
        assert field["doc"].strip(), field["name"]


def test_store_status_changed_has_the_agreed_fields_in_order() -> None:
    assert CATALOG.event("StoreStatusChanged").field_names == (
        "event_id", "publisher_id", "location_id", "location_name", "status", "reason",
        "opening_hours_today", "effective_from", "effective_until", "street", "house_number",
        "postal_code", "city", "latitude", "longitude", "contact_subject_id", "contact_name",
        "contact_phone", "occurred_at", "published_at",
    )  # fmt: skip


def test_classification_marks_contacts_personal_and_subject_internal() -> None:
    for event_type in EVENT_TYPES:
        classification = CATALOG.classification(event_type)
        personal = {name for name, label in classification.items() if label == "personal"}
        assert personal == {"contact_name", "contact_phone"}
        assert classification["contact_subject_id"] is Classification.INTERNAL
    assert CATALOG.classification("StoreStatusChanged")["reason"] is Classification.INTERNAL


def test_event_schema_returns_a_private_copy() -> None:
    schema = CATALOG.event_schema("StoreStatusChanged")
    schema["fields"].clear()
    assert CATALOG.event_schema("StoreStatusChanged")["fields"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_model_fields_match_schema_fields_order_and_nullability(event_type: str) -> None:
    model = EVENT_MODELS[event_type]
    schema = CATALOG.event(event_type).schema
    assert tuple(model.model_fields) == tuple(field["name"] for field in schema["fields"])
    for field in schema["fields"]:
        info = model.model_fields[field["name"]]
        nullable = _is_nullable_schema(field)
        assert _is_optional_annotation(info.annotation) == nullable, field["name"]
        if nullable:
            assert field["type"][0] == "null"
            assert field["default"] is None
            assert info.default is None, field["name"]
        else:
            assert info.is_required(), field["name"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@given(data=st.data())
def test_models_round_trip_through_the_catalog_schema(event_type: str, data: st.DataObject) -> None:
    event: CatalogEvent = data.draw(strategies.events(event_type))
    record = event.to_avro()
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, CATALOG.parsed_schema(event_type), record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, CATALOG.parsed_schema(event_type), None)
    assert decoded == record
    assert list(decoded) == list(record)
    assert type(event).from_avro(decoded) == event


@given(partner=st.sampled_from(strategies.PARTNER_IDS).flatmap(strategies.partners))
def test_partner_round_trips_through_its_control_schema(partner: Partner) -> None:
    decoded = _round_trip(CATALOG.control_schema("Partner"), partner.to_avro())
    assert Partner.from_avro(decoded) == partner


@given(agreement=strategies.agreements(with_limits=True))
def test_agreement_round_trips_through_its_control_schema(agreement: Agreement) -> None:
    decoded = _round_trip(CATALOG.control_schema("DataSharingAgreement"), agreement.to_avro())
    assert Agreement.from_avro(decoded) == agreement


@given(consent=strategies.consents())
def test_consent_round_trips_through_its_control_schema(consent: ConsentRecord) -> None:
    decoded = _round_trip(CATALOG.control_schema("ConsentRecord"), consent.to_avro())
    assert ConsentRecord.from_avro(decoded) == consent


def test_control_models_match_control_schema_field_names() -> None:
    pairs = {"Partner": Partner, "DataSharingAgreement": Agreement, "ConsentRecord": ConsentRecord}
    for name, model in pairs.items():
        schema = CATALOG.control(name).schema
        assert tuple(model.model_fields) == tuple(field["name"] for field in schema["fields"])


# --- a copy of the catalog to break ---------------------------------------------------


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    return target


def _edit(path: Path, change: Any) -> None:
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


def _expect_catalog_error(directory: Path, *fragments: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(directory)
    assert isinstance(caught.value, EcoshareError)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_missing_directory_is_a_catalog_error(tmp_path: Path) -> None:
    _expect_catalog_error(tmp_path / "nowhere", "events/")


def test_field_without_classification_is_named(catalog_copy: Path) -> None:
    path = catalog_copy / "events" / "StoreStatusChanged.v1.avsc"
    _edit(path, lambda schema: schema["fields"][16].pop("classification"))
    _expect_catalog_error(catalog_copy, "contact_name", "no classification")


def test_unknown_classification_is_named(catalog_copy: Path) -> None:
    path = catalog_copy / "events" / "LocationAvailability.v1.avsc"
    _edit(path, lambda schema: schema["fields"][0].update(classification="secret"))
    _expect_catalog_error(catalog_copy, "event_id", "'secret'")


def test_nested_field_without_classification_is_named(catalog_copy: Path) -> None:
    path = catalog_copy / "control" / "DataSharingAgreement.v1.avsc"

    def drop_nested(schema: dict[str, Any]) -> None:
        row_filters = next(field for field in schema["fields"] if field["name"] == "row_filters")
        row_filters["type"]["items"]["fields"][0].pop("classification")

    _edit(path, drop_nested)
    _expect_catalog_error(catalog_copy, "RowFilter.field", "no classification")


def test_field_without_doc_is_named(catalog_copy: Path) -> None:
    path = catalog_copy / "events" / "StoreStatusChanged.v1.avsc"
    _edit(path, lambda schema: schema["fields"][4].pop("doc"))
    _expect_catalog_error(catalog_copy, "status", "no doc")


def test_invalid_json_is_a_catalog_error(catalog_copy: Path) -> None:
    (catalog_copy / "events" / "StoreStatusChanged.v1.avsc").write_text("{not json")
    _expect_catalog_error(catalog_copy, "StoreStatusChanged.v1.avsc", "cannot read")


def test_invalid_avro_is_a_catalog_error(catalog_copy: Path) -> None:
    path = catalog_copy / "events" / "StoreStatusChanged.v1.avsc"
    _edit(path, lambda schema: schema["fields"][0].update(type="no-such-type"))
    _expect_catalog_error(catalog_copy, "invalid Avro schema")


def test_wrong_namespace_and_misnamed_files_are_catalog_errors(catalog_copy: Path) -> None:
    path = catalog_copy / "events" / "StoreStatusChanged.v1.avsc"
    _edit(path, lambda schema: schema.update(namespace="nl.other"))
    _expect_catalog_error(catalog_copy, "namespace")
    path.unlink()
    (catalog_copy / "events" / "storestatus.avsc").write_text("{}")
    _expect_catalog_error(catalog_copy, "<Record>.v<N>.avsc")


def test_later_versions_become_current_and_older_stay_readable(catalog_copy: Path) -> None:
    source = catalog_copy / "events" / "LocationAvailability.v1.avsc"
    target = catalog_copy / "events" / "LocationAvailability.v2.avsc"
    schema = json.loads(source.read_text())
    schema["fields"].append(
        {
            "name": "note",
            "type": ["null", "string"],
            "default": None,
            "doc": "A note.",
            "classification": "internal",
        }
    )
    target.write_text(json.dumps(schema))
    catalog = load_catalog(catalog_copy)
    assert catalog.version("LocationAvailability") == 2
    assert "note" in catalog.classification("LocationAvailability")
    assert "note" not in catalog.event("LocationAvailability", 1).classification
    with pytest.raises(CatalogError, match="no version 3"):
        catalog.event("LocationAvailability", 3)
    with pytest.raises(CatalogError, match="unknown event type"):
        catalog.event("Nope")
