"""Compiled scanners accept exactly what a full Avro decoder accepts."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecoshare.codec.errors import (
    CodecError,
    InvalidValueError,
    TrailingBytesError,
    TruncatedPayloadError,
)
from ecoshare.codec.layout import compile_layout, encode_long, read_long
from tests.strategies import CATALOG, event_records

NESTED = {
    "type": "record",
    "name": "Nested",
    "namespace": "t",
    "fields": [
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": ["null", "long"]}},
        {
            "name": "where",
            "type": {
                "type": "record",
                "name": "Where",
                "fields": [{"name": "lat", "type": "double"}, {"name": "ok", "type": "boolean"}],
            },
        },
        {"name": "again", "type": ["null", "Where"]},
        {"name": "raw", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "D", "size": 4}},
        {"name": "ratio", "type": "float"},
    ],
}


def _encode(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


@settings(max_examples=150)
@given(
    st.sampled_from(CATALOG.event_types).flatmap(lambda t: st.tuples(st.just(t), event_records(t)))
)
def test_scanner_offsets_split_the_body_into_its_fields(case: tuple[str, dict[str, Any]]) -> None:
    event_type, record = case
    schema = CATALOG.event_schema(event_type)
    body = _encode(schema, record)
    layout = compile_layout(schema)
    offsets = layout.offsets(body)
    assert offsets[0] == 0 and offsets[-1] == len(body)
    decoded = fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(schema), None)
    assert layout.read("event_id", body, offsets) == decoded["event_id"]
    assert layout.read("postal_code", body, offsets) == decoded["postal_code"]
    assert layout.read("contact_name", body, offsets) == decoded["contact_name"]
    for cut in range(len(body)):
        with pytest.raises(CodecError):
            layout.offsets(body[:cut])


def test_scanner_handles_nested_and_collection_types() -> None:
    record = {
        "tags": ["a", "bé"],
        "attrs": {"x": 1, "y": None},
        "where": {"lat": 52.1, "ok": True},
        "again": {"lat": 4.5, "ok": False},
        "raw": b"\x00\x01",
        "digest": b"abcd",
        "ratio": 0.5,
    }
    body = _encode(NESTED, record)
    layout = compile_layout(NESTED)
    offsets = layout.offsets(body)
    assert offsets[-1] == len(body)
    assert layout.read("raw", body, offsets) == b"\x00\x01"
    assert layout.read("ratio", body, offsets) == 0.5


def test_trailing_bytes_are_refused() -> None:
    schema = CATALOG.event_schema("StoreStatusChanged")
    layout = compile_layout(schema)
    record = _valid_store_status()
    with pytest.raises(TrailingBytesError):
        layout.offsets(_encode(schema, record) + b"\x00")


def test_enum_index_out_of_range_is_refused() -> None:
    schema = CATALOG.event_schema("StoreStatusChanged")
    layout = compile_layout(schema)
    body = bytearray(_encode(schema, _valid_store_status()))
    offsets = layout.offsets(bytes(body))
    body[offsets[layout.field_index["status"]]] = 0x7E  # enum index 63
    with pytest.raises(InvalidValueError):
        layout.offsets(bytes(body))


def test_invalid_utf8_is_refused() -> None:
    schema = CATALOG.event_schema("StoreStatusChanged")
    layout = compile_layout(schema)
    body = bytearray(_encode(schema, _valid_store_status(location_name="ÿÿ")))
    offsets = layout.offsets(bytes(body))
    start = offsets[layout.field_index["location_name"]]
    body[start + 1] = 0xFF  # first byte of the UTF-8 sequence
    with pytest.raises(InvalidValueError):
        layout.offsets(bytes(body))


def test_a_truncated_body_names_truncation() -> None:
    schema = CATALOG.event_schema("StoreStatusChanged")
    layout = compile_layout(schema)
    body = _encode(schema, _valid_store_status())
    with pytest.raises(TruncatedPayloadError):
        layout.offsets(body[: len(body) // 2])


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_zigzag_varints_round_trip(value: int) -> None:
    assert read_long(encode_long(value), 0) == (value, len(encode_long(value)))


def _valid_store_status(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "6f1c1a52-3b7e-4a8e-9d7e-2c1f1b0a9e11",
        "publisher_id": "postnl",
        "location_id": "sp-1",
        "location_name": "PostNL-punt Primera",
        "status": "CLOSED",
        "reason": "lockdown",
        "opening_hours_today": None,
        "effective_from": 1_584_345_600_000,
        "effective_until": None,
        "street": "Damrak",
        "house_number": "1",
        "postal_code": "1012 AB",
        "city": "Amsterdam",
        "latitude": 52.37,
        "longitude": 4.89,
        "contact_subject_id": "owner-1",
        "contact_name": "Anna de Vries",
        "contact_phone": "+31 6 12345678",
        "occurred_at": 1_584_345_600_000,
        "published_at": 1_584_345_600_100,
    }
    record.update(overrides)
    return record
