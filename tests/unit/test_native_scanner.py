"""The compiled scanner accepts a body exactly when a strict Avro reader does.

Three implementations meet here: the compiled scanner (``ecoshare._native.Layout``),
the plain strict reader of :mod:`tests.unit.strict_avro` (the oracle), and the
``avro`` package, which the oracle must never be laxer than. Inputs are valid bodies
of the catalog's schemas and of a schema using every Avro type, then the same bodies
mutated at random (byte flips, insertions, deletions, truncation), then hand-made
bodies on each boundary of the strict rules.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecoshare.codec.errors import (
    CodecError,
    InvalidValueError,
    TrailingBytesError,
    TruncatedPayloadError,
)
from ecoshare.codec.layout import compile_layout
from ecoshare.governance.cores import select_core
from ecoshare.governance.engine import ADMISSION_FIELDS
from tests.strategies import CATALOG
from tests.unit.strict_avro import RefusalError, StrictReader

native = select_core("native")

KINDS: dict[type[CodecError], str] = {
    TruncatedPayloadError: "truncated",
    InvalidValueError: "invalid",
    TrailingBytesError: "trailing",
}

EVERY_TYPE: dict[str, Any] = {
    "type": "record",
    "name": "EveryType",
    "namespace": "test.strict",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "flag", "type": "boolean"},
        {"name": "count", "type": "int"},
        {"name": "total", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "share", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "levels", "type": {"type": "map", "values": "int"}},
        {"name": "choice", "type": ["null", "int", "string", "Kind"]},
        {"name": "nothing", "type": {"type": "array", "items": "null"}},
        {
            "name": "node",
            "type": {
                "type": "record",
                "name": "Node",
                "fields": [
                    {"name": "label", "type": "string"},
                    {"name": "digest", "type": "Digest"},
                ],
            },
        },
        {"name": "published_at", "type": ["null", "long"]},
    ],
}

# The Python scanner unrolls schemas into code, so it cannot take a recursive one; the
# compiled scanner can, and is held to the oracle on it.
RECURSIVE: dict[str, Any] = {
    "type": "record",
    "name": "Chain",
    "fields": [
        {"name": "event_id", "type": "string"},
        {
            "name": "head",
            "type": {
                "type": "record",
                "name": "Link",
                "fields": [
                    {"name": "label", "type": "string"},
                    {"name": "next", "type": ["null", "Link"]},
                ],
            },
        },
    ],
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "StoreStatusChanged": CATALOG.event_schema("StoreStatusChanged"),
    "LocationAvailability": CATALOG.event_schema("LocationAvailability"),
    "EveryType": EVERY_TYPE,
    "Chain": RECURSIVE,
}

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)


def _values(schema: Any, named: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of(*[_values(branch, named, depth) for branch in schema])
    if isinstance(schema, str) and schema in named:
        return _values(named[schema], named, depth)
    kind = schema if isinstance(schema, str) else schema["type"]
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": INT32,
        "long": INT64,
        "float": st.floats(width=32, allow_nan=False),
        "double": st.floats(allow_nan=False),
        "bytes": st.binary(max_size=20),
        "string": st.text(max_size=20),
    }
    if kind in simple:
        if isinstance(schema, dict) and schema.get("logicalType"):
            return st.integers(0, 2**41)  # timestamps in range for fastavro
        return simple[kind]
    if kind == "enum":
        named[schema["name"]] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        named[schema["name"]] = schema
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(_values(schema["items"], named, depth), max_size=4)
    if kind == "map":
        return st.dictionaries(
            st.text(max_size=6), _values(schema["values"], named, depth), max_size=3
        )
    if kind == "record":
        named[schema["name"]] = schema
        if depth > 2:  # recursion ends with the null branch
            return st.fixed_dictionaries(
                {f["name"]: _leaf(f["type"], named) for f in schema["fields"]}
            )
        return st.fixed_dictionaries(
            {f["name"]: _values(f["type"], named, depth + 1) for f in schema["fields"]}
        )
    raise AssertionError(kind)


def _leaf(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    if isinstance(schema, list) and "null" in schema:
        return st.none()
    return _values(schema, named, 99)


def _encode(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SCHEMAS)))
    return name, _encode(SCHEMAS[name], draw(RECORDS[name]))


RECORDS = {name: _values(schema, {}) for name, schema in SCHEMAS.items()}


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name, body = draw(_bodies())
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "set" and data:
            data[position] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xED]))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=3))
        elif operation == "delete" and data:
            del data[position]
        elif operation == "truncate":
            del data[position:]
    return name, bytes(data)


def _oracle(name: str, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", StrictReader(SCHEMAS[name]).read_record(body)
    except RefusalError as refusal:
        return refusal.kind, None


def _without_logical_types(schema: Any) -> Any:
    """Logical types are a reader's interpretation (the avro package turns timestamps
    into datetimes, which stop at year 9999), not part of binary validity."""
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    if isinstance(schema, dict):
        return {
            key: _without_logical_types(value)
            for key, value in schema.items()
            if key != "logicalType"
        }
    return schema


AVRO_SCHEMAS = {
    name: avro.schema.parse(json.dumps(_without_logical_types(schema)))
    for name, schema in SCHEMAS.items()
}


def _avro_accepts(name: str, body: bytes) -> bool:
    parsed = AVRO_SCHEMAS[name]
    stream = io.BytesIO(body)
    try:
        avro.io.DatumReader(parsed).read(avro.io.BinaryDecoder(stream))
    except Exception:  # any refusal of the avro package counts
        return False
    return stream.tell() == len(body)


LAYOUTS = {name: native.Layout(schema, list(ADMISSION_FIELDS)) for name, schema in SCHEMAS.items()}  # type: ignore[union-attr]


PYTHON_LAYOUTS = {
    name: compile_layout(schema, ADMISSION_FIELDS)
    for name, schema in SCHEMAS.items()
    if name != "Chain"
}


def _native_verdict(name: str, body: bytes) -> tuple[str, tuple[int, ...] | None]:
    try:
        offsets, _ = LAYOUTS[name].scan_reading(body, 0)
    except CodecError as exc:
        return KINDS[type(exc)], None
    return "ok", offsets


def scan_native(schema: dict[str, Any], body: bytes) -> tuple[int, ...]:
    """The compiled scanner as a ``scan(schema, body)`` callable, for fuzz harnesses."""
    layout: Callable[[bytes, int], tuple[int, ...]] = native.Layout(schema).scan  # type: ignore[union-attr]
    return layout(body, 0)


def _check(name: str, body: bytes) -> None:
    expected, _ = _oracle(name, body)
    actual, _ = _native_verdict(name, body)
    assert actual == expected, f"{name} {body.hex()}: native {actual}, oracle {expected}"
    if expected == "ok":
        assert _avro_accepts(name, body), f"oracle laxer than avro on {body.hex()}"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
def test_valid_bodies_scan_to_the_python_offsets_and_envelope(case: tuple[str, bytes]) -> None:
    name, body = case
    _check(name, body)
    if name == "Chain":
        return
    layout = PYTHON_LAYOUTS[name]
    assert layout.scan_reading is not None
    assert LAYOUTS[name].scan_reading(body, 0) == layout.scan_reading(body, 0)
    assert scan_native(SCHEMAS[name], body) == layout.scan(body, 0)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_bodies_get_the_strict_readers_verdict(case: tuple[str, bytes]) -> None:
    _check(*case)


ENUM = {
    "type": "record",
    "name": "R",
    "fields": [{"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}}],
}


def _one(field_type: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}


BOUNDARIES: list[tuple[str, Any, bytes, str]] = [
    ("enum index -1", ENUM["fields"][0]["type"], b"\x01", "invalid"),
    ("enum index past the symbols", ENUM["fields"][0]["type"], b"\x04", "invalid"),
    ("last enum index", ENUM["fields"][0]["type"], b"\x02", "ok"),
    ("int 2**31", "int", b"\x80\x80\x80\x80\x10", "invalid"),
    ("int max", "int", b"\xfe\xff\xff\xff\x0f", "ok"),
    ("int min", "int", b"\xff\xff\xff\xff\x0f", "ok"),
    ("int in 6 bytes", "int", b"\x80\x80\x80\x80\x80\x00", "invalid"),
    ("int zero in 5 bytes", "int", b"\x80\x80\x80\x80\x00", "ok"),
    ("long in 11 bytes", "long", b"\x80" * 10 + b"\x00", "invalid"),
    ("long beyond 64 bits", "long", b"\xff" * 9 + b"\x7f", "invalid"),
    ("long max", "long", b"\xfe" + b"\xff" * 8 + b"\x01", "ok"),
    ("long min", "long", b"\xff" * 9 + b"\x01", "ok"),
    ("varint cut short", "long", b"\x80\x80", "truncated"),
    ("boolean 2", "boolean", b"\x02", "invalid"),
    ("union branch past the end", ["null", "int"], b"\x04", "invalid"),
    ("union branch -1", ["null", "int"], b"\x01", "invalid"),
    ("union index 0 in 10 bytes", ["null", "int"], b"\x80" * 9 + b"\x00", "ok"),
    ("union index in 11 bytes", ["null", "int"], b"\x80" * 10 + b"\x00", "invalid"),
    ("negative string length", "string", b"\x01", "invalid"),
    ("string past the end", "string", b"\x0aab", "truncated"),
    ("string not UTF-8", "string", b"\x02\xff", "invalid"),
    ("UTF-16 surrogate in a string", "string", b"\x06\xed\xa0\x80", "invalid"),
    ("negative bytes length", "bytes", b"\x03", "invalid"),
    ("fixed cut short", {"type": "fixed", "name": "F", "size": 4}, b"abc", "truncated"),
    ("trailing byte", "int", b"\x02\x00", "trailing"),
    ("map key not UTF-8", {"type": "map", "values": "int"}, b"\x02\x02\xff\x00\x00", "invalid"),
    (
        "negative block count with size",
        {"type": "array", "items": "int"},
        b"\x03\x04\x04\x06\x00",
        "ok",
    ),
    (
        "huge count of null items",
        {"type": "array", "items": "null"},
        b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00",
        "ok",
    ),
    (
        "huge count of int items",
        {"type": "array", "items": "int"},
        b"\xfe\xff\xff\xff\x0f\x00",
        "truncated",
    ),
    ("empty body", "int", b"", "truncated"),
]


@pytest.mark.parametrize(
    ("field_type", "body", "expected"),
    [case[1:] for case in BOUNDARIES],
    ids=[case[0] for case in BOUNDARIES],
)
def test_each_strict_rule_on_its_boundary(field_type: Any, body: bytes, expected: str) -> None:
    schema = _one(field_type)
    try:
        oracle = ("ok", StrictReader(schema).read_record(body))[0]
    except RefusalError as refusal:
        oracle = refusal.kind
    assert oracle == expected
    try:
        native.Layout(schema).scan(body, 0)  # type: ignore[union-attr]
        verdict = "ok"
    except CodecError as exc:
        verdict = KINDS[type(exc)]
    assert verdict == expected
