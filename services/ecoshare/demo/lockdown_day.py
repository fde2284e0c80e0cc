"""The lockdown day's events: shops opening, closing and cutting their hours after the
announcement, lockers filling up, in time order."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from ecoshare.demo.locations import Location, hours_text, minute_of_day
from ecoshare.demo.reference import (
    FRANCHISE_ID,
    HOUR_MS,
    LOCATION_AVAILABILITY,
    LOCKDOWN_ANNOUNCED_AFTER,
    LOCKDOWN_LENGTH,
    LOCKDOWN_REASON,
    MINUTE_MS,
    OPERATOR_ID,
    RETAIL_CHAIN_ID,
    STOCK_CATEGORIES,
    STORE_STATUS_CHANGED,
    EventRecord,
    LocationKind,
    epoch_millis,
)
from ecoshare.domain.events import CapacityKind, StoreStatus

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
        shift = self.rng.randint(*jitter_minutes) * MINUTE_MS + self.rng.randrange(MINUTE_MS)
        return self.start_ms + minute * MINUTE_MS + shift

    def planned(self, minute: int) -> int:
        """Milliseconds of an exact time of day, as announced in opening hours."""
        return self.start_ms + minute * MINUTE_MS

    def on_day(self, days_after: timedelta, minute: int) -> int:
        """Milliseconds of a time of day on a later day, in the start's local time."""
        return epoch_millis(self.start + days_after + timedelta(minutes=minute))

    def minute_of(self, at_ms: int) -> int:
        return (at_ms - self.start_ms) // MINUTE_MS

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
        closed_ms = day.announced_ms + rng.randint(5, 150) * MINUTE_MS + rng.randrange(MINUTE_MS)
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
        limited_ms = day.announced_ms + rng.randint(5, 120) * MINUTE_MS + rng.randrange(MINUTE_MS)
        limited_closes = min(
            closes, rng.choice((minute_of_day(15), minute_of_day(16), minute_of_day(17)))
        )
        limited_hours = hours_text(opens, limited_closes)
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
    at_ms = opened_ms + rng.randint(1, 3) * MINUTE_MS
    while at_ms < open_until_ms:
        day.add_availability(location, at_ms, CapacityKind.PICKUP_CAPACITY, available=available)
        # Parcels arrive faster than they are collected; after the announcement open
        # points also take in parcels for their closed neighbours.
        intake = rng.uniform(0.0, 0.3 if at_ms >= day.announced_ms else 0.2)
        collected = rng.uniform(0.0, 0.1)
        available = max(0, min(capacity, available - round(capacity * (intake - collected))))
        at_ms += rng.randint(120, 180) * MINUTE_MS
    if closed_after:
        day.add_availability(
            location,
            open_until_ms + rng.randint(1, 2) * MINUTE_MS,
            CapacityKind.PICKUP_CAPACITY,
            available=0,
        )


def _report_stock_levels(day: _Day, location: Location, opened_ms: int, open_until_ms: int) -> None:
    rng = day.rng
    capacity = location.capacity or 0
    for category in STOCK_CATEGORIES:
        stock = round(capacity * rng.uniform(0.6, 1.0))
        at_ms = opened_ms + rng.randint(1, 10) * MINUTE_MS
        while at_ms < open_until_ms:
            day.add_availability(
                location, at_ms, CapacityKind.STOCK_LEVEL, available=stock, category=category
            )
            # The announcement sets off hoarding.
            sold = rng.uniform(0.15, 0.4) if at_ms >= day.announced_ms else rng.uniform(0.02, 0.12)
            stock = max(0, stock - round(capacity * sold))
            at_ms += rng.randint(150, 240) * MINUTE_MS


def _simulate_locker(day: _Day, location: Location) -> None:
    rng = day.rng
    day.add_status(
        location,
        day.at_minute(minute_of_day(6), (0, 30)),
        StoreStatus.OPEN,
        reason=None,
        opening_hours_today=location.opening_hours,
        effective_until=None,
    )
    # A locker that is out of order sends no slot counts until it is repaired.
    out_of_order = range(0)
    if rng.random() < _LOCKER_FAULT_SHARE:
        fault_ms = day.at_minute(minute_of_day(8), (0, 12 * 60))
        repaired_ms = fault_ms + rng.randint(60, 180) * MINUTE_MS
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
    day_end_ms = day.start_ms + 24 * HOUR_MS
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
        at_ms += rng.randint(60, 120) * MINUTE_MS
