"""The reference case of the PostNL lockdown day: its partners, event types, field lists,
the lockdown's timing and the carriers' postcode regions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from ecoshare.demo.dutch_places import postcode_region

EventRecord = dict[str, Any]
ConsentRecordData = dict[str, Any]

STORE_STATUS_CHANGED = "StoreStatusChanged"
LOCATION_AVAILABILITY = "LocationAvailability"

OPERATOR_ID = "postnl"
RETAIL_CHAIN_ID = "retail-chain"
FRANCHISE_ID = "franchise-shops"
CARRIER_NORTH_ID = "carrier-north"
CARRIER_SOUTH_ID = "carrier-south"
CONSUMER_APP_ID = "consumer-app"

RETAIL_CHAIN_BRAND = "Heidebloem"
FRANCHISE_BRAND = "Hoekwinkel"

# PostNL had about 3,750 shop service points in 2020.
REFERENCE_LOCATION_COUNT = 3750
# 23 March 2020, the day the Dutch "intelligent lockdown" was tightened; local midnight.
REFERENCE_DAY_START = datetime(2020, 3, 23, tzinfo=timezone(timedelta(hours=1), "CET"))

LOCKDOWN_REASON = "lockdown"
LOCKDOWN_ANNOUNCED_AFTER = timedelta(hours=12)
# The announced measures ran for two weeks; shops that name a reopening date use this.
LOCKDOWN_LENGTH = timedelta(days=14)

CONSENT_PURPOSE = "parcel-delivery"
CONSENTED_FIELDS = ("contact_name", "contact_phone")

STOCK_CATEGORIES = ("mondkapjes", "handgel", "toiletpapier")

STORE_STATUS_FIELDS = (
    "event_id",
    "publisher_id",
    "location_id",
    "location_name",
    "status",
    "reason",
    "opening_hours_today",
    "effective_from",
    "effective_until",
    "street",
    "house_number",
    "postal_code",
    "city",
    "latitude",
    "longitude",
    "contact_subject_id",
    "contact_name",
    "contact_phone",
    "occurred_at",
    "published_at",
)
LOCATION_AVAILABILITY_FIELDS = (
    "event_id",
    "publisher_id",
    "location_id",
    "location_name",
    "capacity_kind",
    "category",
    "available",
    "capacity",
    "postal_code",
    "city",
    "latitude",
    "longitude",
    "contact_subject_id",
    "contact_name",
    "contact_phone",
    "occurred_at",
    "published_at",
)
CONSENT_FIELDS = (
    "consent_id",
    "subject",
    "controller",
    "grantee",
    "purpose",
    "scope",
    "given_at",
    "expires_at",
    "withdrawn_at",
)


class LocationKind(StrEnum):
    SERVICE_POINT = "service_point"
    PARCEL_LOCKER = "parcel_locker"
    CHAIN_STORE = "chain_store"
    FRANCHISE_SHOP = "franchise_shop"


@dataclass(frozen=True, slots=True)
class ScenarioPartner:
    partner_id: str
    name: str
    roles: tuple[str, ...]
    contact_email: str


# The same partners as examples/postnl/governance.yaml.
SCENARIO_PARTNERS: tuple[ScenarioPartner, ...] = (
    ScenarioPartner(OPERATOR_ID, "PostNL", ("operator", "publisher"), "ecosystem@postnl.example"),
    ScenarioPartner(
        RETAIL_CHAIN_ID,
        f"{RETAIL_CHAIN_BRAND} Drogisterijen B.V.",
        ("publisher",),
        "winkeldata@heidebloem.example",
    ),
    ScenarioPartner(
        FRANCHISE_ID,
        f"{FRANCHISE_BRAND} Franchise B.V.",
        ("publisher",),
        "franchise@hoekwinkel.example",
    ),
    ScenarioPartner(
        CARRIER_NORTH_ID, "Polder Koeriers B.V.", ("subscriber",), "planning@polderkoeriers.example"
    ),
    ScenarioPartner(
        CARRIER_SOUTH_ID, "Maasland Bezorging B.V.", ("subscriber",), "ritplanning@maasland.example"
    ),
    ScenarioPartner(
        CONSUMER_APP_ID, "Pakketwijzer (app)", ("subscriber",), "privacy@pakketwijzer.example"
    ),
)

# Carriers split the country by the first two digits of the postcode, not by compass
# direction: carrier-north takes 10-49 (the west and Amsterdam), carrier-south 50-99.
CARRIER_POSTCODE_REGIONS: dict[str, range] = {
    CARRIER_NORTH_ID: range(10, 50),
    CARRIER_SOUTH_ID: range(50, 100),
}


def carrier_for_postcode(postal_code: str) -> str:
    """The carrier whose postcode regions include ``postal_code``."""
    region = postcode_region(postal_code)
    for carrier_id, regions in CARRIER_POSTCODE_REGIONS.items():
        if region in regions:
            return carrier_id
    raise ValueError(f"postcode {postal_code!r} is outside every carrier's regions")


EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


def epoch_millis(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of a timezone-aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return (moment - EPOCH_START) // timedelta(milliseconds=1)
