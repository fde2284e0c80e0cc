"""Agreement, row filter and field rule validation, and their semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from ecoshare.domain.agreements import (
    Agreement,
    FieldAction,
    FieldRule,
    Limits,
    RowFilter,
    expand_prefix_range,
)

T0 = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)


def _agreement(**changes: Any) -> Agreement:
    data: dict[str, Any] = {
        "agreement_id": "agr-carrier-x",
        "version": 1,
        "publishers": ["shop-a"],
        "subscriber": "carrier-x",
        "event_types": ["StoreStatusChanged"],
        "purpose": "last-mile-routing",
        "valid_from": T0,
        "fields": {"status": "deliver"},
    }
    data.update(changes)
    return Agreement.model_validate(data)


def _error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value)


# --- row filters ----------------------------------------------------------------------


def test_prefix_range_expands_to_zero_padded_prefixes() -> None:
    assert expand_prefix_range("10", "19") == tuple(str(n) for n in range(10, 20))
    assert expand_prefix_range("08", "11") == ("08", "09", "10", "11")
    row_filter = RowFilter.model_validate({"field": "postal_code", "prefix_range": ["10", "19"]})
    assert row_filter.op == "prefix"
    assert row_filter.prefixes == tuple(str(n) for n in range(10, 20))


@pytest.mark.parametrize(
    ("bounds", "fragment"),
    [
        (["19", "10"], "above high"),
        (["1", "19"], "equal width"),
        (["1a", "19"], "digit strings"),
        ("1019", "two digit strings"),
    ],
)
def test_bad_prefix_range_names_the_field(bounds: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RowFilter.model_validate({"field": "postal_code", "prefix_range": bounds})
    assert "postal_code" in _error_text(caught)
    assert fragment in _error_text(caught)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"op": "equals"}, "needs value"),
        ({"op": "in"}, "non-empty values"),
        ({"op": "in", "values": []}, "non-empty values"),
        ({"op": "prefix"}, "non-empty prefixes"),
        ({"op": "range"}, "needs low, high or both"),
        ({"op": "range", "low": 5, "high": 1}, "above high"),
        ({"op": "range", "low": "a", "high": 3}, "both be numbers or strings"),
        ({"op": "equals", "value": "x", "values": ["y"]}, "remove values"),
        ({"op": "in", "values": ["a"], "low": 1}, "remove low"),
        ({"op": "prefix", "prefixes": ["1"], "prefix_range": ["10", "11"]}, "not both"),
        ({"op": "between", "low": 1}, "op"),
        ({"op": "equals", "value": "x", "colour": "red"}, "colour"),
    ],
)
def test_row_filter_operands_must_match_the_op(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RowFilter.model_validate({"field": "city", **data})
    text = _error_text(caught)
    assert fragment in text
    assert "city" in text or fragment in ("op", "colour")


def test_row_filter_operands_are_not_coerced() -> None:
    with pytest.raises(ValidationError):
        RowFilter.model_validate({"field": "available", "op": "equals", "value": True})
    with pytest.raises(ValidationError):
        RowFilter.model_validate({"field": "available", "op": "equals", "value": b"1"})


def test_equals_null_matches_only_a_null_field() -> None:
    row_filter = RowFilter(field="reason", op="equals", value=None)
    assert row_filter.matches({"reason": None})
    assert not row_filter.matches({"reason": "lockdown"})
    assert not row_filter.matches({})


@pytest.mark.parametrize(
    ("row_filter", "record", "expected"),
    [
        (RowFilter(field="status", op="equals", value="CLOSED"), {"status": "CLOSED"}, True),
        (RowFilter(field="status", op="equals", value="CLOSED"), {"status": "OPEN"}, False),
        (RowFilter(field="available", op="equals", value=3), {"available": 3}, True),
        (RowFilter(field="available", op="equals", value=3), {"available": "3"}, False),
        (RowFilter(field="available", op="equals", value=3.0), {"available": 3}, True),
        (RowFilter(field="id", op="in", values=("a", "b")), {"id": "b"}, True),
        (RowFilter(field="id", op="in", values=("a", "b")), {"id": "c"}, False),
        (RowFilter(field="id", op="in", values=(1, "1")), {"id": 1}, True),
        (RowFilter(field="pc", op="prefix", prefixes=("10", "11")), {"pc": "1012 AB"}, True),
        (RowFilter(field="pc", op="prefix", prefixes=("10", "11")), {"pc": "2012 AB"}, False),
        (RowFilter(field="pc", op="prefix", prefixes=("10",)), {"pc": None}, False),
        (RowFilter(field="pc", op="prefix", prefixes=("10",)), {"pc": 1012}, False),
        (RowFilter(field="n", op="range", low=1, high=3), {"n": 1}, True),
        (RowFilter(field="n", op="range", low=1, high=3), {"n": 3}, True),
        (RowFilter(field="n", op="range", low=1, high=3), {"n": 3.5}, False),
        (RowFilter(field="n", op="range", low=1), {"n": 10**9}, True),
        (RowFilter(field="n", op="range", high=1.5), {"n": -4}, True),
        (RowFilter(field="n", op="range", low=1, high=3), {"n": None}, False),
        (RowFilter(field="n", op="range", low=1, high=3), {"n": "2"}, False),
        (RowFilter(field="s", op="range", low="b", high="d"), {"s": "c"}, True),
        (RowFilter(field="s", op="range", low="b", high="d"), {"s": "e"}, False),
        (RowFilter(field="missing", op="range", low=0), {"n": 1}, False),
    ],
)
def test_row_filter_matches(row_filter: RowFilter, record: dict[str, Any], expected: bool) -> None:
    assert row_filter.matches(record) is expected


def test_timestamps_compare_as_epoch_millis() -> None:
    at = datetime(2020, 3, 16, 12, 0, tzinfo=UTC)
    millis = 1_584_360_000_000
    assert RowFilter(field="t", op="range", low=millis).matches({"t": at})
    assert not RowFilter(field="t", op="range", low=millis + 1).matches({"t": at})
    assert RowFilter(field="t", op="equals", value=millis).matches({"t": at})
    assert RowFilter(field="t", op="equals", value=millis).matches({"t": millis})


# --- field rules ----------------------------------------------------------------------


def test_bare_action_names_are_rules() -> None:
    assert FieldRule.model_validate("hash") == FieldRule(action=FieldAction.HASH)
    assert FieldRule.model_validate("drop").grants is False
    assert FieldRule.model_validate("deliver").grants is True


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"action": "generalise"}, "exactly one of decimals"),
        ({"action": "generalise", "decimals": 2, "truncate_to": "hour"}, "exactly one"),
        ({"action": "deliver", "decimals": 2}, "deliver takes no decimals"),
        ({"action": "hash", "truncate_to": "day"}, "hash takes no decimals or truncate_to"),
        ({"action": "deliver", "keep_last": 4}, "deliver takes no keep_last"),
        ({"action": "mask", "keep_last": -1}, "greater than or equal to 0"),
        ({"action": "generalise", "truncate_to": "week"}, "'hour' or 'day'"),
        ({"action": "shred"}, "'deliver', 'drop', 'mask', 'hash' or 'generalise'"),
    ],
)
def test_field_rule_combinations_are_checked(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        FieldRule.model_validate(data)
    assert fragment in _error_text(caught)


def test_field_rule_errors_name_the_field_inside_an_agreement() -> None:
    with pytest.raises(ValidationError) as caught:
        _agreement(fields={"latitude": {"action": "generalise"}})
    assert "fields.latitude" in _error_text(caught)


# --- agreements -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"version": 0}, "version"),
        ({"publishers": []}, "publishers"),
        ({"publishers": ["Shop A"]}, "publishers"),
        ({"subscriber": "Carrier_X"}, "subscriber"),
        ({"event_types": []}, "event_types"),
        ({"purpose": ""}, "purpose"),
        ({"valid_from": datetime(2020, 3, 16, 8, 0)}, "valid_from"),
        ({"valid_until": T0}, "valid_until"),
        ({"valid_until": T0 - timedelta(seconds=1)}, "valid_until"),
        ({"limits": {"max_events_per_minute": 0}}, "max_events_per_minute"),
        ({"row_filters": [{"field": "city", "op": "in"}]}, "city"),
        ({"subscribers": ["carrier-x"]}, "subscribers"),
    ],
)
def test_agreement_validation_names_the_field(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _agreement(**changes)
    assert fragment in _error_text(caught)


def test_agreement_timestamps_are_normalised_to_utc_millis() -> None:
    amsterdam = datetime.fromisoformat("2020-03-16T09:00:00.123456+01:00")
    agreement = _agreement(valid_from=amsterdam)
    assert agreement.valid_from == datetime(2020, 3, 16, 8, 0, 0, 123000, tzinfo=UTC)
    assert agreement.valid_from.tzinfo is UTC


def test_is_in_force_is_inclusive_from_and_exclusive_until() -> None:
    agreement = _agreement(valid_until=T0 + timedelta(days=1))
    assert not agreement.is_in_force(T0 - timedelta(milliseconds=1))
    assert agreement.is_in_force(T0)
    assert agreement.is_in_force(T0 + timedelta(days=1) - timedelta(milliseconds=1))
    assert not agreement.is_in_force(T0 + timedelta(days=1))
    assert _agreement().is_in_force(T0 + timedelta(days=10_000))


def test_covers_checks_event_type_and_publisher_or_wildcard() -> None:
    named = _agreement(publishers=["shop-a", "shop-b"])
    assert named.covers("shop-b", "StoreStatusChanged")
    assert not named.covers("shop-c", "StoreStatusChanged")
    assert not named.covers("shop-a", "LocationAvailability")
    anyone = _agreement(publishers=["*"])
    assert anyone.covers("whoever", "StoreStatusChanged")


def test_names_publisher_is_the_publisher_or_the_wildcard_whatever_the_event_type() -> None:
    named = _agreement(publishers=["shop-a", "shop-b"])
    assert named.names_publisher("shop-a")
    assert not named.names_publisher("shop-c")
    assert not named.names_publisher("")
    assert _agreement(publishers=["*"]).names_publisher("whoever")


def test_consent_purpose_defaults_to_the_purpose() -> None:
    assert _agreement().effective_consent_purpose == "last-mile-routing"
    assert _agreement(consent_purpose="contact").effective_consent_purpose == "contact"


def test_granted_fields_excludes_drop_rules() -> None:
    agreement = _agreement(fields={"status": "deliver", "city": "drop", "contact_phone": "hash"})
    assert agreement.granted_fields == {"status", "contact_phone"}


def test_limits_default_to_none() -> None:
    assert Limits() == Limits(max_events_per_minute=None, max_events_per_day=None)


def test_agreements_are_frozen() -> None:
    agreement = _agreement()
    with pytest.raises(ValidationError):
        agreement.version = 2  # type: ignore[misc]
