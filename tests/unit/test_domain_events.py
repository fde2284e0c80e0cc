"""Event models: validation and normalisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from ecoshare.domain.events import LocationAvailability, StoreStatus, StoreStatusChanged
from ecoshare.domain.timestamps import from_epoch_millis, to_epoch_millis

T0 = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)


def _store(**changes: Any) -> StoreStatusChanged:
    data: dict[str, Any] = {
        "event_id": "0b0a5f4e-6a43-4f43-9d0e-8f4c6f1c9a11",
        "publisher_id": "shop-a",
        "location_id": "sp-0001",
        "location_name": "Primera Centrum",
        "status": "CLOSED",
        "effective_from": T0,
        "street": "Damrak",
        "house_number": "1",
        "postal_code": "1012 AB",
        "city": "Amsterdam",
        "latitude": 52.3745,
        "longitude": 4.8979,
        "occurred_at": T0,
        "published_at": T0,
    }
    data.update(changes)
    return StoreStatusChanged.model_validate(data)


def test_a_store_event_validates_and_maps_to_avro() -> None:
    event = _store(contact_name="Anna de Vries")
    assert event.status is StoreStatus.CLOSED
    record = event.to_avro()
    assert record["status"] == "CLOSED"
    assert type(record["status"]) is str
    assert record["effective_from"] == T0
    assert record["contact_name"] == "Anna de Vries"
    assert list(record) == list(StoreStatusChanged.model_fields)


def test_postal_codes_are_normalised_to_digits_space_letters() -> None:
    assert _store(postal_code="1012AB").postal_code == "1012 AB"
    for bad in ("0123 AB", "1012 ab", "1012-AB", "101 AB"):
        with pytest.raises(ValidationError, match="postal_code"):
            _store(postal_code=bad)


def test_timestamps_must_be_aware_and_become_utc_millis() -> None:
    with pytest.raises(ValidationError, match="occurred_at"):
        _store(occurred_at=datetime(2020, 3, 16, 8, 0))
    cet = timezone(timedelta(hours=1))
    event = _store(occurred_at=datetime(2020, 3, 16, 9, 0, 0, 999_999, tzinfo=cet))
    assert event.occurred_at == datetime(2020, 3, 16, 8, 0, 0, 999_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"latitude": 91.0}, "latitude"),
        ({"longitude": float("nan")}, "longitude"),
        ({"status": "ON_FIRE"}, "status"),
        ({"opening_hours_today": "9-5"}, "opening_hours_today"),
        ({"publisher_id": ""}, "publisher_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_values_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        _store(**changes)


def test_opening_hours_accept_split_days_and_midnight() -> None:
    assert _store(opening_hours_today="08:00-12:00, 13:00-24:00").opening_hours_today


def test_availability_counts_are_non_negative_ints() -> None:
    data: dict[str, Any] = {
        "event_id": "0b0a5f4e-6a43-4f43-9d0e-8f4c6f1c9a11",
        "publisher_id": "postnl",
        "location_id": "locker-7",
        "location_name": "Pakketautomaat Station",
        "capacity_kind": "PARCEL_LOCKER_SLOTS",
        "available": 3,
        "capacity": 40,
        "postal_code": "3511 LX",
        "city": "Utrecht",
        "latitude": 52.09,
        "longitude": 5.11,
        "occurred_at": T0,
        "published_at": T0,
    }
    assert LocationAvailability.model_validate(data).available == 3
    with pytest.raises(ValidationError, match="available"):
        LocationAvailability.model_validate({**data, "available": -1})
    with pytest.raises(ValidationError, match="capacity"):
        LocationAvailability.model_validate({**data, "capacity": "40"})


def test_epoch_millis_conversions_are_inverse() -> None:
    assert to_epoch_millis(T0) == 1_584_345_600_000
    assert from_epoch_millis(1_584_345_600_000) == T0
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)
    assert to_epoch_millis(before_epoch) == -1
