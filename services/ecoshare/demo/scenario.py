"""The PostNL lockdown day: demo and test data for the reference case.

A few thousand PostNL service points, parcel lockers, chain stores and franchise shops
across the Netherlands open in the morning; around midday a lockdown is announced and many
shops close or cut their hours, while parcel lockers fill up. Everything here is pure data
generation: no Kafka, no network, no clock. The day's start is passed in and every
function takes a seed, so the same arguments always produce the same output.

Records are plain dicts shaped like the Avro records ``StoreStatusChanged`` and
``LocationAvailability``: timestamps are epoch milliseconds, enums are their symbol names.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from faker import Faker

from ecoshare.demo.dutch_places import DutchPlace, dutch_places, postcode_region, random_postcode
from ecoshare.domain.events import CapacityKind, StoreStatus

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


@dataclass(frozen=True, slots=True)
class Location:
    """A place whose status or availability is published; times of day are minutes."""

    location_id: str
    publisher_id: str
    kind: LocationKind
    name: str
    street: str
    house_number: str
    postal_code: str
    city: str
    latitude: float
    longitude: float
    opens_at_minute: int
    closes_at_minute: int
    capacity: int | None
    contact_subject_id: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None

    @property
    def opening_hours(self) -> str:
        """Regular opening hours as "HH:MM-HH:MM" (a locker open all day is "00:00-24:00")."""
        return _hours_text(self.opens_at_minute, self.closes_at_minute)


# Share of each kind in the generated set; service points get the remainder.
_KIND_SHARES: dict[LocationKind, float] = {
    LocationKind.PARCEL_LOCKER: 0.15,
    LocationKind.CHAIN_STORE: 0.18,
    LocationKind.FRANCHISE_SHOP: 0.12,
}
_PUBLISHER_BY_KIND: dict[LocationKind, str] = {
    LocationKind.SERVICE_POINT: OPERATOR_ID,
    LocationKind.PARCEL_LOCKER: OPERATOR_ID,
    LocationKind.CHAIN_STORE: RETAIL_CHAIN_ID,
    LocationKind.FRANCHISE_SHOP: FRANCHISE_ID,
}
_ID_PREFIX_BY_KIND: dict[LocationKind, str] = {
    LocationKind.SERVICE_POINT: "postnl-punt",
    LocationKind.PARCEL_LOCKER: "postnl-automaat",
    LocationKind.CHAIN_STORE: "heidebloem",
    LocationKind.FRANCHISE_SHOP: "hoekwinkel",
}


def _hm(hours: int, minutes: int = 0) -> int:
    return hours * 60 + minutes


# (opens, closes) in minutes after midnight, with relative weights.
_OPENING_HOURS_BY_KIND: dict[LocationKind, tuple[tuple[tuple[int, int], int], ...]] = {
    LocationKind.SERVICE_POINT: (
        ((_hm(8), _hm(20)), 3),
        ((_hm(8, 30), _hm(18)), 3),
        ((_hm(9), _hm(17, 30)), 4),
        ((_hm(9), _hm(18)), 4),
        ((_hm(10), _hm(18)), 2),
    ),
    LocationKind.PARCEL_LOCKER: (((0, _hm(24)), 1),),
    LocationKind.CHAIN_STORE: (
        ((_hm(8, 30), _hm(20)), 2),
        ((_hm(9), _hm(18)), 3),
        ((_hm(9), _hm(21)), 1),
    ),
    LocationKind.FRANCHISE_SHOP: (
        ((_hm(7), _hm(19)), 1),
        ((_hm(8, 30), _hm(18)), 3),
        ((_hm(9), _hm(17, 30)), 3),
        ((_hm(10), _hm(17)), 1),
    ),
}

_SHOP_TYPES = (
    "Tabakshop",
    "Boekhandel",
    "Kantoorboekhandel",
    "Supermarkt",
    "Drogisterij",
    "Gemakswinkel",
    "Bloemenwinkel",
    "Fietsenwinkel",
    "Dierenspeciaalzaak",
    "Cadeauwinkel",
)
_LOCKER_SLOT_COUNTS = (30, 45, 60, 75, 90, 120)


def generate_locations(count: int, seed: int) -> list[Location]:
    """``count`` locations across the Netherlands, the same list for the same seed.

    About 55% are PostNL service points in shops, 15% PostNL parcel lockers, 18% stores of
    the retail chain and 12% franchise shops whose owner's name and phone are carried.
    Places are picked in proportion to their population; a location's postcode lies in its
    place's postcode range and its position within a few kilometres of the place's
    GeoNames coordinates.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    rng = random.Random(seed)
    fake = Faker("nl_NL")
    fake.seed_instance(seed)
    places = dutch_places()
    cumulative_population = list(itertools.accumulate(place.population for place in places))

    kinds = _allocate_kinds(count)
    rng.shuffle(kinds)
    numbers: Counter[LocationKind] = Counter()
    locations = []
    for kind in kinds:
        numbers[kind] += 1
        place = places[
            bisect.bisect_right(cumulative_population, rng.random() * cumulative_population[-1])
        ]
        locations.append(_build_location(kind, numbers[kind], place, rng, fake))
    return locations


def _allocate_kinds(count: int) -> list[LocationKind]:
    allocated = {kind: round(count * share) for kind, share in _KIND_SHARES.items()}
    while sum(allocated.values()) > count:
        largest = max(allocated, key=lambda kind: allocated[kind])
        allocated[largest] -= 1
    allocated[LocationKind.SERVICE_POINT] = count - sum(allocated.values())
    return [kind for kind in LocationKind for _ in range(allocated.get(kind, 0))]


def _build_location(
    kind: LocationKind, number: int, place: DutchPlace, rng: random.Random, fake: Faker
) -> Location:
    street = fake.street_name()
    latitude, longitude = _position_near(place, rng)
    hours_options, weights = zip(*_OPENING_HOURS_BY_KIND[kind], strict=True)
    opens, closes = rng.choices(hours_options, weights=weights)[0]
    contact_subject_id = contact_name = contact_phone = None
    capacity: int | None
    if kind is LocationKind.SERVICE_POINT:
        if rng.random() < 0.5:
            shop = f"{rng.choice(_SHOP_TYPES)} {fake.last_name()}"
        else:
            shop = fake.company()
        name = f"PostNL-punt {shop}"
        capacity = rng.randrange(20, 85, 5)
    elif kind is LocationKind.PARCEL_LOCKER:
        name = f"PostNL Pakketautomaat {place.name} {street}"
        capacity = rng.choice(_LOCKER_SLOT_COUNTS)
    elif kind is LocationKind.CHAIN_STORE:
        name = f"{RETAIL_CHAIN_BRAND} {place.name} {street}"
        capacity = rng.randrange(40, 210, 10)
    else:
        # The owner's name stays out of the shop name: location_name is public, the
        # owner's identity is personal data that needs consent.
        name = f"{FRANCHISE_BRAND} {place.name} {street}"
        capacity = None
        contact_subject_id = f"owner-{number}"
        contact_name = fake.name()
        contact_phone = fake.phone_number()
    return Location(
        location_id=f"{_ID_PREFIX_BY_KIND[kind]}-{number:05d}",
        publisher_id=_PUBLISHER_BY_KIND[kind],
        kind=kind,
        name=name,
        street=street,
        house_number=_house_number(rng, fake),
        postal_code=random_postcode(place, rng),
        city=place.name,
        latitude=latitude,
        longitude=longitude,
        opens_at_minute=opens,
        closes_at_minute=closes,
        capacity=capacity,
        contact_subject_id=contact_subject_id,
        contact_name=contact_name,
        contact_phone=contact_phone,
    )


def _house_number(rng: random.Random, fake: Faker) -> str:
    # Faker pads some numbers with zeros ("018"); Dutch addresses never do.
    number = fake.building_number().lstrip("0") or "1"
    return f"{number}-{rng.choice('ABC')}" if rng.random() < 0.08 else number


_KM_PER_DEGREE_LATITUDE = 111.2


def _position_near(place: DutchPlace, rng: random.Random) -> tuple[float, float]:
    # Bigger places spread wider: about 1 km for a town, 3-4 km for Amsterdam.
    spread_km = 0.7 + math.sqrt(place.population) / 300
    km_north = max(-2.5, min(2.5, rng.gauss(0, 1))) * spread_km
    km_east = max(-2.5, min(2.5, rng.gauss(0, 1))) * spread_km
    latitude = place.latitude + km_north / _KM_PER_DEGREE_LATITUDE
    km_per_degree_longitude = _KM_PER_DEGREE_LATITUDE * math.cos(math.radians(place.latitude))
    longitude = place.longitude + km_east / km_per_degree_longitude
    return round(latitude, 6), round(longitude, 6)


def _hours_text(opens_at_minute: int, closes_at_minute: int) -> str:
    return (
        f"{opens_at_minute // 60:02d}:{opens_at_minute % 60:02d}-"
        f"{closes_at_minute // 60:02d}:{closes_at_minute % 60:02d}"
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_MS = 60_000
_HOUR_MS = 60 * _MINUTE_MS


def epoch_millis(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of a timezone-aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# Shares of shops per kind by how the day goes for them; the rest stay open all day.
_CLOSED_ALL_DAY_SHARE: dict[LocationKind, float] = {
    LocationKind.SERVICE_POINT: 0.02,
    LocationKind.CHAIN_STORE: 0.01,
    LocationKind.FRANCHISE_SHOP: 0.03,
}
_LOCKDOWN_CLOSED_SHARE: dict[LocationKind, float] = {
    LocationKind.SERVICE_POINT: 0.33,
    LocationKind.CHAIN_STORE: 0.15,
    LocationKind.FRANCHISE_SHOP: 0.50,
}
_LOCKDOWN_LIMITED_SHARE: dict[LocationKind, float] = {
    LocationKind.SERVICE_POINT: 0.15,
    LocationKind.CHAIN_STORE: 0.35,
    LocationKind.FRANCHISE_SHOP: 0.20,
}
_LOCKER_FAULT_SHARE = 0.03

_CLOSED_ALL_DAY_REASONS = ("staff illness", "renovation", "family circumstances")
_LIMITED_REASONS = ("lockdown: reduced opening hours", "lockdown: pickup only")

# Publishers send a little after the fact: PostNL's systems directly, the chain from its
# store systems, franchise shops over HTTP from a tablet behind the counter.
_PUBLISH_DELAY_MS: dict[str, tuple[int, int]] = {
    OPERATOR_ID: (100, 1_500),
    RETAIL_CHAIN_ID: (300, 3_000),
    FRANCHISE_ID: (500, 5_000),
}


class _Day:
    """Collects the day's events before they are put in time order."""

    def __init__(self, start: datetime, rng: random.Random) -> None:
        self.start = start
        self.start_ms = epoch_millis(start)
        self.announced_ms = self.start_ms + LOCKDOWN_ANNOUNCED_AFTER // timedelta(milliseconds=1)
        self.rng = rng
        self.pending: list[tuple[int, int, str, EventRecord]] = []

    def at_minute(self, minute: int, jitter_minutes: tuple[int, int] = (0, 0)) -> int:
        """Milliseconds of a time of day, shifted by a random number of whole minutes
        within ``jitter_minutes`` plus random seconds."""
        shift = self.rng.randint(*jitter_minutes) * _MINUTE_MS + self.rng.randrange(_MINUTE_MS)
        return self.start_ms + minute * _MINUTE_MS + shift

    def planned(self, minute: int) -> int:
        """Milliseconds of an exact time of day, as announced in opening hours."""
        return self.start_ms + minute * _MINUTE_MS

    def on_day(self, days_after: timedelta, minute: int) -> int:
        """Milliseconds of a time of day on a later day, in the start's local time."""
        return epoch_millis(self.start + days_after + timedelta(minutes=minute))

    def minute_of(self, at_ms: int) -> int:
        return (at_ms - self.start_ms) // _MINUTE_MS

    def add_status(
        self,
        location: Location,
        at_ms: int,
        status: StoreStatus,
        *,
        reason: str | None,
        opening_hours_today: str | None,
        effective_until: int | None,
    ) -> None:
        record: EventRecord = {
            "event_id": "",
            "publisher_id": location.publisher_id,
            "location_id": location.location_id,
            "location_name": location.name,
            "status": status.value,
            "reason": reason,
            "opening_hours_today": opening_hours_today,
            "effective_from": at_ms,
            "effective_until": effective_until,
            "street": location.street,
            "house_number": location.house_number,
            "postal_code": location.postal_code,
            "city": location.city,
            "latitude": location.latitude,
            "longitude": location.longitude,
            "contact_subject_id": location.contact_subject_id,
            "contact_name": location.contact_name,
            "contact_phone": location.contact_phone,
            "occurred_at": at_ms,
            "published_at": 0,
        }
        self.pending.append((at_ms, len(self.pending), STORE_STATUS_CHANGED, record))

    def add_availability(
        self,
        location: Location,
        at_ms: int,
        capacity_kind: CapacityKind,
        *,
        available: int,
        category: str | None = None,
    ) -> None:
        capacity = location.capacity or 0
        record: EventRecord = {
            "event_id": "",
            "publisher_id": location.publisher_id,
            "location_id": location.location_id,
            "location_name": location.name,
            "capacity_kind": capacity_kind.value,
            "category": category,
            "available": max(0, min(capacity, available)),
            "capacity": capacity,
            "postal_code": location.postal_code,
            "city": location.city,
            "latitude": location.latitude,
            "longitude": location.longitude,
            "contact_subject_id": location.contact_subject_id,
            "contact_name": location.contact_name,
            "contact_phone": location.contact_phone,
            "occurred_at": at_ms,
            "published_at": 0,
        }
        self.pending.append((at_ms, len(self.pending), LOCATION_AVAILABILITY, record))

    def in_time_order(self) -> Iterator[tuple[str, EventRecord]]:
        self.pending.sort(key=lambda entry: (entry[0], entry[1]))
        last_published_ms = 0
        for occurred_ms, _, event_type, record in self.pending:
            record["event_id"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            delay_ms = self.rng.randint(*_PUBLISH_DELAY_MS[record["publisher_id"]])
            # One publishing pipeline: nothing is published before what was published earlier.
            last_published_ms = max(occurred_ms + delay_ms, last_published_ms)
            record["published_at"] = last_published_ms
            yield event_type, record


def lockdown_day(
    locations: Sequence[Location], start: datetime, seed: int
) -> Iterator[tuple[str, EventRecord]]:
    """The events of one lockdown day, as ``(event_type, record)`` pairs.

    ``start`` is the local midnight the day begins at and must be timezone-aware; times
    of day are elapsed time after it. Shops open in the morning; at
    ``start + LOCKDOWN_ANNOUNCED_AFTER`` (noon) a lockdown is announced, after which about
    a third of the shops become TEMPORARILY_CLOSED with reason "lockdown" and others
    LIMITED; shops still open close in the evening. Every shop has at least one status
    event after the announcement. Parcel lockers report free slots all day, service
    points their pickup capacity and chain stores their stock levels.

    Pairs come in order of ``occurred_at``; ``published_at`` is non-decreasing too and
    between 100 ms and 5 s after ``occurred_at``. Event ids are uuid4 strings drawn from
    the seeded generator, so the same arguments give the same events.
    """
    day = _Day(start, random.Random(seed))
    for location in sorted(locations, key=lambda location: location.location_id):
        if location.kind is LocationKind.PARCEL_LOCKER:
            _simulate_locker(day, location)
        else:
            _simulate_shop(day, location)
    return day.in_time_order()


def _simulate_shop(day: _Day, location: Location) -> None:
    rng = day.rng
    kind = location.kind
    opens, closes = location.opens_at_minute, location.closes_at_minute
    next_opening_ms = day.on_day(timedelta(days=1), opens)
    draw = rng.random()
    closed_all_day = draw < _CLOSED_ALL_DAY_SHARE[kind]
    # A shop already closed for the day still announces that it stays shut under the
    # lockdown: its morning status says "back tomorrow", which is no longer true.
    closes_for_lockdown = (
        closed_all_day or draw < _CLOSED_ALL_DAY_SHARE[kind] + _LOCKDOWN_CLOSED_SHARE[kind]
    )
    goes_limited = not closes_for_lockdown and draw < (
        _CLOSED_ALL_DAY_SHARE[kind] + _LOCKDOWN_CLOSED_SHARE[kind] + _LOCKDOWN_LIMITED_SHARE[kind]
    )

    opened_ms = day.at_minute(opens, (-3, 4))
    if closed_all_day:
        day.add_status(
            location,
            opened_ms,
            StoreStatus.CLOSED,
            reason=rng.choice(_CLOSED_ALL_DAY_REASONS),
            opening_hours_today=None,
            effective_until=next_opening_ms,
        )
    else:
        day.add_status(
            location,
            opened_ms,
            StoreStatus.OPEN,
            reason=None,
            opening_hours_today=location.opening_hours,
            effective_until=day.planned(closes),
        )

    if closes_for_lockdown:
        closed_ms = day.announced_ms + rng.randint(5, 150) * _MINUTE_MS + rng.randrange(_MINUTE_MS)
        reopening_ms = day.on_day(LOCKDOWN_LENGTH, opens) if rng.random() < 0.5 else None
        day.add_status(
            location,
            closed_ms,
            StoreStatus.TEMPORARILY_CLOSED,
            reason=LOCKDOWN_REASON,
            opening_hours_today=None,
            effective_until=reopening_ms,
        )
        open_until_ms = opened_ms if closed_all_day else closed_ms
    elif goes_limited:
        limited_ms = day.announced_ms + rng.randint(5, 120) * _MINUTE_MS + rng.randrange(_MINUTE_MS)
        limited_closes = min(closes, rng.choice((_hm(15), _hm(16), _hm(17))))
        limited_hours = _hours_text(opens, limited_closes)
        limited_until_ms = day.at_minute(limited_closes)
        day.add_status(
            location,
            limited_ms,
            StoreStatus.LIMITED,
            reason=rng.choice(_LIMITED_REASONS),
            opening_hours_today=limited_hours,
            effective_until=day.planned(limited_closes),
        )
        day.add_status(
            location,
            limited_until_ms,
            StoreStatus.CLOSED,
            reason=None,
            opening_hours_today=limited_hours,
            effective_until=next_opening_ms,
        )
        open_until_ms = limited_until_ms
    else:
        closing_ms = day.at_minute(closes, (0, 8))
        day.add_status(
            location,
            closing_ms,
            StoreStatus.CLOSED,
            reason=None,
            opening_hours_today=location.opening_hours,
            effective_until=next_opening_ms,
        )
        open_until_ms = closing_ms

    if kind is LocationKind.SERVICE_POINT:
        _report_pickup_capacity(day, location, opened_ms, open_until_ms, closes_for_lockdown)
    elif kind is LocationKind.CHAIN_STORE and not closed_all_day:
        _report_stock_levels(day, location, opened_ms, open_until_ms)


def _report_pickup_capacity(
    day: _Day, location: Location, opened_ms: int, open_until_ms: int, closed_after: bool
) -> None:
    rng = day.rng
    capacity = location.capacity or 0
    available = round(capacity * rng.uniform(0.5, 0.9))
    at_ms = opened_ms + rng.randint(1, 3) * _MINUTE_MS
    while at_ms < open_until_ms:
        day.add_availability(location, at_ms, CapacityKind.PICKUP_CAPACITY, available=available)
        # Parcels arrive faster than they are collected; after the announcement open
        # points also take in parcels for their closed neighbours.
        intake = rng.uniform(0.0, 0.3 if at_ms >= day.announced_ms else 0.2)
        collected = rng.uniform(0.0, 0.1)
        available = max(0, min(capacity, available - round(capacity * (intake - collected))))
        at_ms += rng.randint(120, 180) * _MINUTE_MS
    if closed_after:
        day.add_availability(
            location,
            open_until_ms + rng.randint(1, 2) * _MINUTE_MS,
            CapacityKind.PICKUP_CAPACITY,
            available=0,
        )


def _report_stock_levels(day: _Day, location: Location, opened_ms: int, open_until_ms: int) -> None:
    rng = day.rng
    capacity = location.capacity or 0
    for category in STOCK_CATEGORIES:
        stock = round(capacity * rng.uniform(0.6, 1.0))
        at_ms = opened_ms + rng.randint(1, 10) * _MINUTE_MS
        while at_ms < open_until_ms:
            day.add_availability(
                location, at_ms, CapacityKind.STOCK_LEVEL, available=stock, category=category
            )
            # The announcement sets off hoarding.
            sold = rng.uniform(0.15, 0.4) if at_ms >= day.announced_ms else rng.uniform(0.02, 0.12)
            stock = max(0, stock - round(capacity * sold))
            at_ms += rng.randint(150, 240) * _MINUTE_MS


def _simulate_locker(day: _Day, location: Location) -> None:
    rng = day.rng
    day.add_status(
        location,
        day.at_minute(_hm(6), (0, 30)),
        StoreStatus.OPEN,
        reason=None,
        opening_hours_today=location.opening_hours,
        effective_until=None,
    )
    # A locker that is out of order sends no slot counts until it is repaired.
    out_of_order = range(0)
    if rng.random() < _LOCKER_FAULT_SHARE:
        fault_ms = day.at_minute(_hm(8), (0, 12 * 60))
        repaired_ms = fault_ms + rng.randint(60, 180) * _MINUTE_MS
        day.add_status(
            location,
            fault_ms,
            StoreStatus.TEMPORARILY_CLOSED,
            reason="technical fault",
            opening_hours_today=location.opening_hours,
            effective_until=repaired_ms,
        )
        day.add_status(
            location,
            repaired_ms,
            StoreStatus.OPEN,
            reason=None,
            opening_hours_today=location.opening_hours,
            effective_until=None,
        )
        out_of_order = range(fault_ms, repaired_ms)

    capacity = location.capacity or 0
    free_slots = round(capacity * rng.uniform(0.3, 0.7))
    at_ms = day.at_minute(0, (0, 59))
    day_end_ms = day.start_ms + 24 * _HOUR_MS
    while at_ms < day_end_ms:
        if at_ms not in out_of_order:
            day.add_availability(
                location, at_ms, CapacityKind.PARCEL_LOCKER_SLOTS, available=free_slots
            )
        hour = day.minute_of(at_ms) // 60
        delivered = rng.uniform(0.05, 0.2) if 7 <= hour < 13 else 0.0
        if at_ms >= day.announced_ms and hour < 20:
            # Parcels for closed service points are redirected to lockers.
            delivered += rng.uniform(0.05, 0.15)
        if 16 <= hour < 23:
            collected = rng.uniform(0.1, 0.25)
        elif 8 <= hour < 16:
            collected = rng.uniform(0.0, 0.05)
        else:
            collected = 0.0
        free_slots = max(0, min(capacity, free_slots + round(capacity * (collected - delivered))))
        at_ms += rng.randint(60, 120) * _MINUTE_MS


@dataclass(frozen=True, slots=True)
class ScenarioConsents:
    """Consent records of franchise owners, and the one to withdraw live in the demo.

    Each record grants the carrier covering the owner's shop the owner's contact name
    and phone (``scope``) for the purpose "parcel-delivery"; timestamps are epoch
    milliseconds. The records are shared dicts: copy before changing one.
    """

    records: tuple[ConsentRecordData, ...]
    consent_id_to_withdraw: str

    def consent_to_withdraw(self) -> ConsentRecordData:
        """A copy of the consent the demo withdraws: a carrier-north grant, preferably of
        an Amsterdam shop owner, whose shop publishes again after the lockdown announcement."""
        for record in self.records:
            if record["consent_id"] == self.consent_id_to_withdraw:
                return dict(record)
        raise LookupError(self.consent_id_to_withdraw)

    def withdrawal(self, withdrawn_at: datetime) -> ConsentRecordData:
        """The consent to withdraw, as its record looks once withdrawn at ``withdrawn_at``."""
        record = self.consent_to_withdraw()
        record["withdrawn_at"] = epoch_millis(withdrawn_at)
        return record


def generate_consents(
    locations: Sequence[Location], start: datetime, seed: int, consenting_share: float = 0.7
) -> ScenarioConsents:
    """Consents given before ``start`` by about ``consenting_share`` of the franchise owners.

    At least one owner consents. None of the consents is withdrawn or expired at
    ``start``; two in three expire two years after they were given, the rest never.
    """
    rng = random.Random(seed)
    start_ms = epoch_millis(start)
    owners = sorted(
        (location for location in locations if location.contact_subject_id is not None),
        key=lambda location: location.location_id,
    )
    if not owners:
        raise ValueError("the locations include no franchise shop with an owner to consent")
    consenting = [owner for owner in owners if rng.random() < consenting_share] or owners[:1]

    records: list[ConsentRecordData] = []
    withdraw_candidates: list[tuple[bool, bool, int, str]] = []
    for owner in consenting:
        given_ms = start_ms - rng.randint(7 * 24 * 60, 400 * 24 * 60) * _MINUTE_MS
        expires_ms = given_ms + 730 * 24 * _HOUR_MS if rng.random() < 2 / 3 else None
        grantee = carrier_for_postcode(owner.postal_code)
        consent_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        records.append(
            {
                "consent_id": consent_id,
                "subject": owner.contact_subject_id,
                "controller": owner.publisher_id,
                "grantee": grantee,
                "purpose": CONSENT_PURPOSE,
                "scope": list(CONSENTED_FIELDS),
                "given_at": given_ms,
                "expires_at": expires_ms,
                "withdrawn_at": None,
            }
        )
        withdraw_candidates.append(
            (
                grantee != CARRIER_NORTH_ID,
                owner.city != "Amsterdam",
                int(owner.location_id.rsplit("-", 1)[1]),
                consent_id,
            )
        )
    return ScenarioConsents(
        records=tuple(records), consent_id_to_withdraw=min(withdraw_candidates)[3]
    )
