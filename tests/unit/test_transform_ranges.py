"""Every transform writes a value valid for the delivered field's type.

Choice: saturate. A rounding that would leave the type's range is cut towards zero to
the same step instead; a timestamp truncation below the smallest ``long`` moves to the
next whole hour or day. Properties over the full range of each type, then the engine
end to end on the edge values of each type.
"""

from __future__ import annotations

import io
import math
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.projection import generalise_number, generalise_timestamp
from ecoshare.domain.state import GovernanceState
from ecoshare.domain.timestamps import MILLIS_PER_DAY, MILLIS_PER_HOUR, to_epoch_millis
from tests.fuzz.differential import oracle_verdict
from tests.unit.governed import (
    CORES,
    NAMES,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_codec_layout import _valid_store_status
from tests.unit.test_scanner_strictness import _availability

DECIMALS = st.integers(min_value=-9, max_value=15)
NOW = datetime(2020, 3, 16, 12, tzinfo=UTC)
F32_MAX = 3.4028234663852886e38


def _valid_for(kind: str, value: Any) -> bool:
    schema = {"type": "record", "name": "R", "fields": [{"name": "v", "type": kind}]}
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), {"v": value})
    return oracle_verdict(schema, buffer.getvalue()).accepted


def _within_a_step(value: float, result: float, decimals: int) -> bool:
    return abs(result - value) <= 10.0 ** (-decimals) * (1 + 1e-9)


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1), DECIMALS)
def test_generalised_int_stays_an_int(value: int, decimals: int) -> None:
    result = generalise_number(value, decimals, "int")
    assert isinstance(result, int) and _valid_for("int", result)
    assert _within_a_step(value, result, decimals)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), DECIMALS)
def test_generalised_long_stays_a_long(value: int, decimals: int) -> None:
    result = generalise_number(value, decimals, "long")
    assert isinstance(result, int) and _valid_for("long", result)
    assert _within_a_step(value, result, decimals)


@given(st.floats(width=32), DECIMALS)
def test_generalised_float_stays_a_float(value: float, decimals: int) -> None:
    result = generalise_number(value, decimals, "float")
    assert isinstance(result, float)
    struct.pack("<f", result)  # representable: no OverflowError
    if math.isfinite(value):
        assert abs(result) <= F32_MAX and _within_a_step(value, result, decimals)


@given(st.floats(), DECIMALS)
def test_generalised_double_stays_a_double(value: float, decimals: int) -> None:
    result = generalise_number(value, decimals, "double")
    assert isinstance(result, float)
    if math.isfinite(value):
        assert math.isfinite(result) and _within_a_step(value, result, decimals)
    else:
        assert result == value or (math.isnan(value) and math.isnan(result))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from(["hour", "day"]))
def test_truncated_timestamp_stays_a_long(value: int, unit: str) -> None:
    step = MILLIS_PER_HOUR if unit == "hour" else MILLIS_PER_DAY
    result = generalise_timestamp(value, unit)  # type: ignore[arg-type]
    assert -(2**63) <= result <= 2**63 - 1
    assert result % step == 0 and abs(result - value) < step


def test_the_edges_of_issue_8() -> None:
    assert generalise_number(2_147_483_647, -1, "int") == 2_147_483_640
    assert generalise_number(-(2**31), -1, "int") == -2_147_483_640
    assert generalise_number(1_234, -2, "int") == 1_200  # in range: plain rounding
    assert generalise_number(1.7976931348623157e308, -308, "double") == 1e308
    assert generalise_timestamp(-(2**63), "hour") == -(2**63) - (-(2**63)) % 3_600_000 + 3_600_000


def _state(fields: dict[str, Any], event_type: str) -> GovernanceState:
    return GovernanceState(
        [
            Partner(partner_id="postnl", name="PostNL", roles=frozenset({Role.PUBLISHER})),
            Partner(partner_id="carrier", name="Carrier", roles=frozenset({Role.SUBSCRIBER})),
        ],
        [
            Agreement(
                agreement_id="agr-t",
                version=1,
                publishers=frozenset({"postnl"}),
                subscriber="carrier",
                event_types=frozenset({event_type}),
                purpose="parcel-delivery",
                valid_from=NOW - timedelta(days=1),
                fields=fields,
            )
        ],
        [],
    )


def _delivered(event_type: str, record: dict[str, Any], fields: dict[str, Any], core: str) -> bytes:
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    message = signed_message(event_type, encode_event(event_type, record), "postnl")
    result = engine.govern([message], _state(fields, event_type), NOW, to_epoch_millis(NOW))
    values = [o.value for o in result.outputs if o.topic == NAMES.delivery("carrier", event_type)]
    assert len(values) == 1, [dict(o.headers) for o in result.outputs]
    return values[0]


@pytest.mark.parametrize("core", CORES)
def test_the_engine_delivers_a_generalised_int_near_its_maximum_as_a_valid_int(core: str) -> None:
    registry_fields = {"event_id": "deliver", "available": {"action": "generalise", "decimals": -1}}
    value = _delivered(
        "LocationAvailability", {**_availability(), "available": 2**31 - 1}, registry_fields, core
    )
    projected = {
        "type": "record",
        "name": "P",
        "fields": [{"name": "event_id", "type": "string"}, {"name": "available", "type": "int"}],
    }
    assert oracle_verdict(projected, value[5:]).accepted
    decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), projected, None)  # type: ignore[call-overload]
    assert decoded["available"] == 2_147_483_640


@pytest.mark.parametrize("core", CORES)
def test_the_engine_truncates_the_smallest_timestamp_to_a_valid_long(core: str) -> None:
    fields = {
        "event_id": "deliver",
        "effective_from": {"action": "generalise", "truncate_to": "day"},
    }
    value = _delivered(
        "StoreStatusChanged", _valid_store_status(effective_from=-(2**63)), fields, core
    )
    projected = {
        "type": "record",
        "name": "P",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "effective_from", "type": "long"},
        ],
    }
    assert oracle_verdict(projected, value[5:]).accepted
    decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), projected, None)  # type: ignore[call-overload]
    assert decoded["effective_from"] % MILLIS_PER_DAY == 0
    assert -(2**63) <= decoded["effective_from"] < -(2**63) + MILLIS_PER_DAY
