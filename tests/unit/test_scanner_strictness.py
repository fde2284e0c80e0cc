"""The scanner accepts a body exactly when a strict Avro reader would.

The hardening cases by name on the event catalog, then the regression corpus of the
differential fuzzer and a bounded fuzzing run (``make fuzz`` runs it longer).
"""

from __future__ import annotations

import io
import os
import time
from typing import Any

import fastavro
import pytest

from ecoshare.codec.errors import CodecError, InvalidValueError
from ecoshare.codec.layout import compile_layout
from tests.fuzz.differential import (
    corpus_cases,
    hunt_differences,
    oracle_verdict,
    python_scan,
)
from tests.strategies import CATALOG
from tests.unit.test_codec_layout import _valid_store_status

FUZZ_SECONDS = float(os.environ.get("ECOSHARE_FUZZ_SECONDS", "15"))
STORE = CATALOG.event_schema("StoreStatusChanged")
AVAILABILITY = CATALOG.event_schema("LocationAvailability")


def _body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def _with_field(schema: dict[str, Any], record: dict[str, Any], name: str, raw: bytes) -> bytes:
    """The body of ``record`` with field ``name``'s bytes replaced by ``raw``."""
    body = _body(schema, record)
    layout = compile_layout(schema)
    offsets = layout.offsets(body)
    index = layout.field_index[name]
    return body[: offsets[index]] + raw + body[offsets[index + 1] :]


def _availability() -> dict[str, Any]:
    return {
        "event_id": "6f1c1a52-3b7e-4a8e-9d7e-2c1f1b0a9e12",
        "publisher_id": "postnl",
        "location_id": "sp-1",
        "location_name": "Pakketautomaat",
        "category": None,
        "capacity_kind": "PARCEL_LOCKER_SLOTS",
        "available": 3,
        "capacity": 60,
        "postal_code": "1012 AB",
        "city": "Amsterdam",
        "latitude": 52.37,
        "longitude": 4.89,
        "contact_subject_id": None,
        "contact_name": None,
        "contact_phone": None,
        "occurred_at": 1,
        "published_at": 2,
    }


# Each: (schema, record, field, raw bytes of the field, accepted by a strict reader)
CASES = {
    "enum index -1": (STORE, _valid_store_status(), "status", b"\x01", False),
    "enum index -64": (STORE, _valid_store_status(), "status", b"\x7f", False),
    "enum index 4 of 4": (STORE, _valid_store_status(), "status", b"\x08", False),
    "enum index 1, padded to 5 bytes": (
        STORE,
        _valid_store_status(),
        "status",
        b"\x82\x80\x80\x80\x00",
        True,
    ),
    "enum index 1, padded to 6 bytes": (
        STORE,
        _valid_store_status(),
        "status",
        b"\x82\x80\x80\x80\x80\x00",
        False,
    ),
    "int 2**31": (AVAILABILITY, _availability(), "available", b"\x80\x80\x80\x80\x10", False),
    "int 2**31 - 1": (AVAILABILITY, _availability(), "capacity", b"\xfe\xff\xff\xff\x0f", True),
    "int -(2**31)": (AVAILABILITY, _availability(), "capacity", b"\xff\xff\xff\xff\x0f", True),
    "int in 6 bytes": (
        AVAILABILITY,
        _availability(),
        "available",
        b"\x86\x80\x80\x80\x80\x00",
        False,
    ),
    "long in 11 bytes": (
        STORE,
        _valid_store_status(),
        "effective_from",
        b"\x80" * 10 + b"\x00",
        False,
    ),
    "long whose tenth byte overflows 64 bits": (
        STORE,
        _valid_store_status(),
        "effective_from",
        b"\xff" * 9 + b"\x02",
        False,
    ),
    "long -(2**63) in 10 bytes": (
        STORE,
        _valid_store_status(),
        "effective_from",
        b"\xff" * 9 + b"\x01",
        True,
    ),
    "union branch 2 of 2": (STORE, _valid_store_status(), "reason", b"\x04", False),
    "union branch -1": (STORE, _valid_store_status(), "reason", b"\x01", False),
    "negative string length": (STORE, _valid_store_status(), "city", b"\x03abc", False),
    "string of invalid UTF-8": (STORE, _valid_store_status(), "city", b"\x04\xed\xa0\x80a", False),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_scanner_judges_each_value_class_like_a_strict_reader(case: str) -> None:
    schema, record, name, raw, accepted = CASES[case]
    body = _with_field(schema, record, name, raw)
    assert oracle_verdict(schema, body).accepted is accepted
    layout = compile_layout(schema)
    if accepted:
        assert layout.offsets(body)[-1] == len(body)
    else:
        with pytest.raises(InvalidValueError):
            layout.offsets(body)


def test_a_hostile_count_of_fixed_width_items_is_refused_at_once() -> None:
    schema = {
        "type": "record",
        "name": "Floats",
        "fields": [{"name": "values", "type": {"type": "array", "items": "float"}}],
    }
    body = b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f\x00"  # 2**62 - 1 floats announced
    started = time.monotonic()
    with pytest.raises(CodecError):
        compile_layout(schema).offsets(body)
    assert time.monotonic() - started < 5  # would run for days as a per-item loop


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda case: case["name"])
def test_regression_corpus(case: dict[str, Any]) -> None:
    body = bytes.fromhex(case["body_hex"])
    assert oracle_verdict(case["schema"], body).accepted is case["accepted"]
    assert python_scan(case["schema"], body) is case["accepted"]


def test_the_fuzzer_finds_no_difference_within_its_budget() -> None:
    seed = int(os.environ.get("ECOSHARE_FUZZ_SEED", time.time()))
    report = hunt_differences(python_scan, seconds=FUZZ_SECONDS, seed=seed, max_differences=5)
    print(f"seed {seed}: {report.summary()}")
    assert report.tried > 0
    assert not report.differences, [
        (d.body.hex(), d.scanner, d.oracle, d.schema) for d in report.differences
    ]


def test_the_fuzzer_tells_a_lenient_scanner_apart() -> None:
    """The harness can fail: a scanner as lenient as plain fastavro is caught."""

    def lenient(schema: dict[str, Any], body: bytes) -> bool:
        stream = io.BytesIO(body)
        try:
            fastavro.schemaless_reader(stream, fastavro.parse_schema(schema), None)  # type: ignore[call-overload]
        except Exception:
            return False
        return stream.tell() == len(body)

    report = hunt_differences(lenient, seconds=30, seed=3, max_differences=1)
    assert report.differences
