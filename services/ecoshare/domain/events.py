"""The catalog's events as frozen pydantic models, with their Avro dict mappings.

Field names and order mirror ``schemas/events/<Type>.v1.avsc`` exactly; a unit test keeps
the two in step. ``to_avro`` produces what fastavro writes for the catalog schema and
``from_avro`` accepts what fastavro reads back: enums as their symbol strings and
``timestamp-millis`` fields as aware UTC datetimes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from ecoshare.domain.timestamps import UtcTimestamp

_POSTAL_CODE = re.compile(r"^([1-9][0-9]{3}) ?([A-Z]{2})$")
_HOURS_RANGE = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]-(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)"
_OPENING_HOURS = re.compile(rf"^{_HOURS_RANGE}(?:, ?{_HOURS_RANGE})*$")
_AVRO_INT_MAX = 2**31 - 1


class StoreStatus(StrEnum):
    """Operating status of a store or service point."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"
    TEMPORARILY_CLOSED = "TEMPORARILY_CLOSED"
    LIMITED = "LIMITED"


class CapacityKind(StrEnum):
    """What a :class:`LocationAvailability` counts."""

    PARCEL_LOCKER_SLOTS = "PARCEL_LOCKER_SLOTS"
    PICKUP_CAPACITY = "PICKUP_CAPACITY"
    STOCK_LEVEL = "STOCK_LEVEL"


def _check_uuid(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"not a UUID: {value!r}") from exc
    return value


def _normalise_postal_code(value: str) -> str:
    match = _POSTAL_CODE.match(value)
    if match is None:
        raise ValueError(f"not a Dutch postal code like '1234 AB': {value!r}")
    return f"{match.group(1)} {match.group(2)}"


def _check_opening_hours(value: str | None) -> str | None:
    if value is not None and _OPENING_HOURS.match(value) is None:
        raise ValueError(
            f"opening hours must look like '09:00-17:30' or '09:00-12:00, 13:00-17:30': {value!r}"
        )
    return value


EventId = Annotated[str, AfterValidator(_check_uuid)]
NonEmpty = Annotated[str, Field(min_length=1)]
PostalCode = Annotated[str, AfterValidator(_normalise_postal_code)]
"""A Dutch postal code, normalised to "1234 AB" (a missing space is inserted)."""
Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Count = Annotated[StrictInt, Field(ge=0, le=_AVRO_INT_MAX)]


class CatalogEvent(BaseModel):
    """Base of the event models: frozen, no unknown fields, Avro dict mapping."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]

    def to_avro(self) -> dict[str, Any]:
        """The Avro dict of the event, in catalog field order.

        Enums become their symbol strings; timestamps stay aware UTC datetimes at
        millisecond precision, which fastavro's ``timestamp-millis`` writes and reads
        back unchanged.
        """
        record: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            record[name] = value.value if isinstance(value, StrEnum) else value
        return record

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """Validate an Avro dict (as fastavro reads it) into the model."""
        return cls.model_validate(dict(record))


class StoreStatusChanged(CatalogEvent):
    """A location opened, closed, closed temporarily or switched to limited service."""

    event_type: ClassVar[str] = "StoreStatusChanged"

    event_id: EventId
    publisher_id: NonEmpty
    location_id: NonEmpty
    location_name: str
    status: StoreStatus
    reason: str | None = None
    opening_hours_today: Annotated[str | None, AfterValidator(_check_opening_hours)] = None
    effective_from: UtcTimestamp
    effective_until: UtcTimestamp | None = None
    street: str
    house_number: str
    postal_code: PostalCode
    city: str
    latitude: Latitude
    longitude: Longitude
    contact_subject_id: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    occurred_at: UtcTimestamp
    published_at: UtcTimestamp


class LocationAvailability(CatalogEvent):
    """Capacity and availability of a location (locker slots, pickups, stock)."""

    event_type: ClassVar[str] = "LocationAvailability"

    event_id: EventId
    publisher_id: NonEmpty
    location_id: NonEmpty
    location_name: str
    capacity_kind: CapacityKind
    category: str | None = None
    available: Count
    capacity: Count
    postal_code: PostalCode
    city: str
    latitude: Latitude
    longitude: Longitude
    contact_subject_id: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    occurred_at: UtcTimestamp
    published_at: UtcTimestamp


EVENT_MODELS: Mapping[str, type[CatalogEvent]] = {
    model.event_type: model for model in (StoreStatusChanged, LocationAvailability)
}
"""Event model per event type name."""
