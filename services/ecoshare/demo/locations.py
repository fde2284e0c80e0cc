"""The locations of the lockdown day: service points, lockers, chain stores and franchise
shops, with their addresses, opening hours and owners."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass

from faker import Faker

from ecoshare.demo.dutch_places import DutchPlace, dutch_places, random_postcode
from ecoshare.demo.reference import (
    FRANCHISE_BRAND,
    FRANCHISE_ID,
    OPERATOR_ID,
    RETAIL_CHAIN_BRAND,
    RETAIL_CHAIN_ID,
    LocationKind,
)


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
        return hours_text(self.opens_at_minute, self.closes_at_minute)


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


def minute_of_day(hours: int, minutes: int = 0) -> int:
    """Minutes after midnight of ``hours:minutes``."""
    return hours * 60 + minutes


# (opens, closes) in minutes after midnight, with relative weights.
_OPENING_HOURS_BY_KIND: dict[LocationKind, tuple[tuple[tuple[int, int], int], ...]] = {
    LocationKind.SERVICE_POINT: (
        ((minute_of_day(8), minute_of_day(20)), 3),
        ((minute_of_day(8, 30), minute_of_day(18)), 3),
        ((minute_of_day(9), minute_of_day(17, 30)), 4),
        ((minute_of_day(9), minute_of_day(18)), 4),
        ((minute_of_day(10), minute_of_day(18)), 2),
    ),
    LocationKind.PARCEL_LOCKER: (((0, minute_of_day(24)), 1),),
    LocationKind.CHAIN_STORE: (
        ((minute_of_day(8, 30), minute_of_day(20)), 2),
        ((minute_of_day(9), minute_of_day(18)), 3),
        ((minute_of_day(9), minute_of_day(21)), 1),
    ),
    LocationKind.FRANCHISE_SHOP: (
        ((minute_of_day(7), minute_of_day(19)), 1),
        ((minute_of_day(8, 30), minute_of_day(18)), 3),
        ((minute_of_day(9), minute_of_day(17, 30)), 3),
        ((minute_of_day(10), minute_of_day(17)), 1),
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


def hours_text(opens_at_minute: int, closes_at_minute: int) -> str:
    """Opening hours as "HH:MM-HH:MM" from minutes after midnight."""
    return (
        f"{opens_at_minute // 60:02d}:{opens_at_minute % 60:02d}-"
        f"{closes_at_minute // 60:02d}:{closes_at_minute % 60:02d}"
    )
