"""Hypothesis strategies for catalog events, agreements, consents and governance states.

Values are drawn from small shared pools (partner ids, postal codes, cities, data
subjects, purposes, a window of days around 16 March 2020), so that generated row
filters, agreements and consents often match generated events: the interesting cases
(delivered, filtered, consented, expired, withdrawn) all occur within a few hundred
examples.

Reusable by any test that needs the catalog's shapes: ``event_records`` for Avro dicts
as fastavro decodes them, ``agreements`` for agreements that fit the catalog's field
types, ``consents``, and ``governance_scenarios`` for a whole evaluation input.

Strategies are built once and cached: building them inside composites on every draw
makes Hypothesis spend most of its time validating strategy objects.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from hypothesis import strategies as st

from ecoshare.catalog.event_catalog import Catalog, load_catalog
from ecoshare.config.settings import REPO_ROOT
from ecoshare.domain.agreements import Agreement, FieldAction, FieldRule, Limits, RowFilter
from ecoshare.domain.classification import Classification
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.events import (
    CapacityKind,
    CatalogEvent,
    LocationAvailability,
    StoreStatus,
    StoreStatusChanged,
)
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.projection import subscriber_hash_key
from ecoshare.domain.state import GovernanceState
from ecoshare.domain.timestamps import to_epoch_millis

T = TypeVar("T")

CATALOG: Catalog = load_catalog(REPO_ROOT / "schemas")
EVENT_TYPES: tuple[str, ...] = CATALOG.event_types

BASE_TIME = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)
"""The first working day of the Dutch 'intelligent lockdown'."""
HOUR_MILLIS = 3_600_000
DAY_MILLIS = 86_400_000
TIME_SPAN_MILLIS = 7 * DAY_MILLIS
PLATFORM_SECRET = b"ecoshare-test-platform-secret"

PUBLISHER_IDS = ("albert-shops", "bakker-bart", "postnl")
SUBSCRIBER_IDS = ("carrier-dhl", "carrier-gls", "city-utrecht", "postnl")
PARTNER_IDS = tuple(sorted({*PUBLISHER_IDS, *SUBSCRIBER_IDS}))
AGREEMENT_IDS = ("agr-01", "agr-02", "agr-03", "agr-04", "agr-05", "agr-06")
SUBJECT_IDS = ("owner-anna", "owner-bram", "owner-cor")
PURPOSES = ("last-mile-routing", "footfall-analytics", "public-information")
CONSENT_SCOPES = ("contact_name", "contact_phone", "personal", "internal", "public")

POOLS: Mapping[str, tuple[str, ...]] = {
    "location_id": ("sp-0001", "sp-0002", "sp-0003", "sp-0104", "sp-0105"),
    "location_name": ("Primera Centrum", "Bruna Station", "AH to go Zuid", "Tabakshop de Pijp"),
    "reason": ("lockdown", "staff shortage", "renovation"),
    "opening_hours_today": ("09:00-17:30", "10:00-16:00", "08:00-12:00, 13:00-18:00"),
    "street": ("Damrak", "Coolsingel", "Vredenburg", "Herestraat"),
    "house_number": ("1", "12-A", "221", "7bis"),
    "postal_code": ("1012 AB", "1098 XH", "1500 KK", "1999 ZZ", "2511 CV", "3011 AD", "9711 LM"),
    "city": ("Amsterdam", "Zaandam", "Den Haag", "Rotterdam", "Utrecht", "Groningen"),
    "category": ("face masks", "hand gel", "toilet paper"),
    "contact_subject_id": SUBJECT_IDS,
    "contact_name": ("Anna de Vries", "Bram Jansen", "Cor van den Berg"),
    "contact_phone": ("+31 6 12345678", "020-1234567", "+31(0)10 7654321"),
}
LATITUDE_RANGE = (50.75, 53.55)
LONGITUDE_RANGE = (3.35, 7.23)
COUNT_RANGE = (0, 60)

_LATITUDES = st.floats(*LATITUDE_RANGE, allow_nan=False, allow_infinity=False)
_LONGITUDES = st.floats(*LONGITUDE_RANGE, allow_nan=False, allow_infinity=False)
_COUNTS = st.integers(*COUNT_RANGE)
_UUIDS = st.uuids().map(str)
_WITHIN_HOUR = st.integers(0, HOUR_MILLIS - 1)


@dataclass(frozen=True)
class FieldShape:
    """What a catalog field holds, as far as generated rules and filters care."""

    name: str
    kind: str  # "string", "enum", "int", "double" or "timestamp"
    nullable: bool
    classification: Classification
    symbols: tuple[str, ...] = ()


def _shape_of(field: Mapping[str, Any]) -> FieldShape:
    avro_type = field["type"]
    nullable = isinstance(avro_type, list) and "null" in avro_type
    if isinstance(avro_type, list):
        avro_type = next(branch for branch in avro_type if branch != "null")
    symbols: tuple[str, ...] = ()
    if isinstance(avro_type, Mapping) and avro_type.get("logicalType") == "timestamp-millis":
        kind = "timestamp"
    elif isinstance(avro_type, Mapping) and avro_type.get("type") == "enum":
        kind, symbols = "enum", tuple(avro_type["symbols"])
    elif avro_type in ("int", "long"):
        kind = "int"
    elif avro_type in ("float", "double"):
        kind = "double"
    else:
        kind = "string"
    return FieldShape(
        field["name"], kind, nullable, Classification(field["classification"]), symbols
    )


FIELD_SHAPES: Mapping[str, Mapping[str, FieldShape]] = {
    event_type: {
        field["name"]: _shape_of(field) for field in CATALOG.event(event_type).schema["fields"]
    }
    for event_type in EVENT_TYPES
}
"""Shape of every field per event type, in catalog order."""


def classification_of(event_type: str) -> dict[str, Classification]:
    """The catalog classification of ``event_type``'s fields, in catalog order."""
    return CATALOG.classification(event_type)


# --- drawing helpers ------------------------------------------------------------------


@cache
def _choice(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(options)


@cache
def _int_range(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


def _maybe(draw: st.DrawFn, strategy: st.SearchStrategy[T], none_weight: int = 1) -> T | None:
    """None with probability ``none_weight / (none_weight + 1)``, else a drawn value."""
    return None if draw(_int_range(0, none_weight)) > 0 else draw(strategy)


def _pooled(name: str) -> st.SearchStrategy[str]:
    return _choice(POOLS[name])


def _draw_offset(draw: st.DrawFn, low_millis: int, high_millis: int) -> int:
    # Whole hours plus milliseconds within the hour: spreads values evenly over the
    # window (plain integers favour its middle and ends) and often hits hour boundaries.
    hours = draw(_int_range(low_millis // HOUR_MILLIS, high_millis // HOUR_MILLIS))
    return min(high_millis, max(low_millis, hours * HOUR_MILLIS + draw(_WITHIN_HOUR)))


@cache
def offsets(low_millis: int, high_millis: int) -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes from BASE_TIME + low to BASE_TIME + high (milliseconds)."""

    @st.composite
    def moments(draw: st.DrawFn) -> datetime:
        return BASE_TIME + timedelta(milliseconds=_draw_offset(draw, low_millis, high_millis))

    return moments()


def timestamps(span_millis: int = TIME_SPAN_MILLIS) -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes at millisecond precision within ``span_millis`` of BASE_TIME."""
    return offsets(-span_millis, span_millis)


def _draw_later(draw: st.DrawFn, start: datetime, max_millis: int) -> datetime:
    return start + timedelta(milliseconds=1 + _draw_offset(draw, 0, max_millis - 1))


# --- events -----------------------------------------------------------------------------


def _draw_contact(draw: st.DrawFn) -> dict[str, str | None]:
    subject_present = draw(_int_range(0, 3)) > 0
    return {
        "contact_subject_id": draw(_pooled("contact_subject_id")) if subject_present else None,
        "contact_name": _maybe(draw, _pooled("contact_name")),
        "contact_phone": _maybe(draw, _pooled("contact_phone")),
    }


@st.composite
def store_status_events(
    draw: st.DrawFn, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> StoreStatusChanged:
    """A valid ``StoreStatusChanged`` from one of ``publisher_ids``."""
    effective_from = draw(timestamps())
    effective_until = (
        _draw_later(draw, effective_from, 3 * DAY_MILLIS) if draw(st.booleans()) else None
    )
    occurred_at = draw(timestamps())
    return StoreStatusChanged(
        event_id=draw(_UUIDS),
        publisher_id=draw(_choice(tuple(publisher_ids))),
        location_id=draw(_pooled("location_id")),
        location_name=draw(_pooled("location_name")),
        status=draw(_choice(tuple(StoreStatus))),
        reason=_maybe(draw, _pooled("reason")),
        opening_hours_today=_maybe(draw, _pooled("opening_hours_today")),
        effective_from=effective_from,
        effective_until=effective_until,
        street=draw(_pooled("street")),
        house_number=draw(_pooled("house_number")),
        postal_code=draw(_pooled("postal_code")),
        city=draw(_pooled("city")),
        latitude=draw(_LATITUDES),
        longitude=draw(_LONGITUDES),
        **_draw_contact(draw),
        occurred_at=occurred_at,
        published_at=occurred_at + timedelta(milliseconds=draw(_int_range(0, 60_000))),
    )


@st.composite
def location_availability_events(
    draw: st.DrawFn, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> LocationAvailability:
    """A valid ``LocationAvailability`` from one of ``publisher_ids``."""
    capacity = draw(_COUNTS)
    occurred_at = draw(timestamps())
    kind = draw(_choice(tuple(CapacityKind)))
    category = draw(_pooled("category")) if kind is CapacityKind.STOCK_LEVEL else None
    return LocationAvailability(
        event_id=draw(_UUIDS),
        publisher_id=draw(_choice(tuple(publisher_ids))),
        location_id=draw(_pooled("location_id")),
        location_name=draw(_pooled("location_name")),
        capacity_kind=kind,
        category=category,
        available=draw(_int_range(0, capacity)),
        capacity=capacity,
        postal_code=draw(_pooled("postal_code")),
        city=draw(_pooled("city")),
        latitude=draw(_LATITUDES),
        longitude=draw(_LONGITUDES),
        **_draw_contact(draw),
        occurred_at=occurred_at,
        published_at=occurred_at + timedelta(milliseconds=draw(_int_range(0, 60_000))),
    )


_EVENT_STRATEGIES: Mapping[str, Callable[..., st.SearchStrategy[CatalogEvent]]] = {
    "StoreStatusChanged": store_status_events,
    "LocationAvailability": location_availability_events,
}


@cache
def _events(event_type: str, publisher_ids: tuple[str, ...]) -> st.SearchStrategy[CatalogEvent]:
    return _EVENT_STRATEGIES[event_type](publisher_ids)


def events(
    event_type: str, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> st.SearchStrategy[CatalogEvent]:
    """Valid event models of ``event_type``."""
    return _events(event_type, tuple(publisher_ids))


@cache
def _event_records(event_type: str, publisher_ids: tuple[str, ...]) -> st.SearchStrategy[Any]:
    return _events(event_type, publisher_ids).map(lambda event: event.to_avro())


def event_records(
    event_type: str, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> st.SearchStrategy[dict[str, Any]]:
    """Avro dicts of ``event_type`` as fastavro decodes them (aware UTC datetimes)."""
    strategy: st.SearchStrategy[dict[str, Any]] = _event_records(event_type, tuple(publisher_ids))
    return strategy


# --- agreements ---------------------------------------------------------------------


@cache
def field_rules(shape: FieldShape) -> st.SearchStrategy[FieldRule]:
    """Rules that fit the field's type: generalise only numbers and timestamps."""
    options: list[st.SearchStrategy[FieldRule]] = [
        st.just(FieldRule(action=FieldAction.DELIVER)),
        st.just(FieldRule(action=FieldAction.DROP)),
        st.just(FieldRule(action=FieldAction.HASH)),
        st.integers(0, 8).map(lambda keep: FieldRule(action=FieldAction.MASK, keep_last=keep)),
    ]
    if shape.kind in ("double", "int"):
        low, high = (0, 4) if shape.kind == "double" else (-2, 1)
        options.append(
            st.integers(low, high).map(
                lambda decimals: FieldRule(action=FieldAction.GENERALISE, decimals=decimals)
            )
        )
    if shape.kind == "timestamp":
        options.append(
            st.sampled_from(["hour", "day"]).map(
                lambda unit: FieldRule(action=FieldAction.GENERALISE, truncate_to=unit)
            )
        )
    return st.one_of(options)


@cache
def _operand_values(shape: FieldShape) -> st.SearchStrategy[Any]:
    if shape.kind == "enum":
        return st.sampled_from(shape.symbols)
    if shape.kind == "int":
        return _COUNTS
    if shape.kind == "double":
        return _LATITUDES if shape.name == "latitude" else _LONGITUDES
    if shape.kind == "timestamp":
        return timestamps().map(to_epoch_millis)
    if shape.name in POOLS:
        return _pooled(shape.name)
    return st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=4)


def _draw_row_filter(draw: st.DrawFn, shape: FieldShape) -> RowFilter:
    values = _operand_values(shape)
    ops = ("equals", "in", "range", "prefix") if shape.kind == "string" else ("equals", "in")
    if shape.kind in ("int", "double", "timestamp"):
        ops = ("equals", "in", "range")
    op = draw(_choice(ops))
    if op == "equals":
        value = _maybe(draw, values, none_weight=1) if shape.nullable else draw(values)
        return RowFilter(field=shape.name, op="equals", value=value)
    if op == "in":
        count = draw(_int_range(1, 3))
        return RowFilter(field=shape.name, op="in", values=[draw(values) for _ in range(count)])
    if op == "prefix":
        if shape.name == "postal_code" and draw(st.booleans()):
            low = draw(_int_range(10, 99))
            high = draw(_int_range(low, min(99, low + 20)))
            return RowFilter.model_validate(
                {"field": shape.name, "prefix_range": [str(low), str(high)]}
            )
        count = draw(_int_range(1, 3))
        prefixes = [draw(values)[: draw(_int_range(1, 3))] for _ in range(count)]
        return RowFilter(field=shape.name, op="prefix", prefixes=prefixes)
    low, high = sorted([draw(values), draw(values)])
    which = draw(_choice(("both", "low", "high")))
    return RowFilter(
        field=shape.name,
        op="range",
        low=low if which != "high" else None,
        high=high if which != "low" else None,
    )


@st.composite
def row_filters(draw: st.DrawFn, shape: FieldShape) -> RowFilter:
    """A filter on ``shape``'s field whose operands come from the generated values."""
    return _draw_row_filter(draw, shape)


def _draw_limits(draw: st.DrawFn) -> Limits | None:
    if draw(st.booleans()):
        return None
    return Limits(
        max_events_per_minute=_maybe(draw, _int_range(1, 5)),
        max_events_per_day=_maybe(draw, _int_range(1, 10)),
    )


@st.composite
def agreements(
    draw: st.DrawFn,
    event_types: Sequence[str] = EVENT_TYPES,
    publisher_ids: Sequence[str] = PUBLISHER_IDS,
    subscriber_ids: Sequence[str] = SUBSCRIBER_IDS,
    agreement_ids: Sequence[str] = AGREEMENT_IDS,
    with_limits: bool = False,
) -> Agreement:
    """An agreement whose rules fit the catalog types of the event types it covers.

    Half of them have row filters, on non-personal fields of the first covered event
    type; rules may name any field of any covered type. Validity starts between three
    days before and half a day after BASE_TIME and is open-ended two times in three.
    """
    types_tuple = tuple(event_types)
    covered = sorted({draw(_choice(types_tuple)) for _ in range(draw(_int_range(1, 2)))})
    if draw(_int_range(0, 2)) == 0:
        publishers = frozenset({"*"})
    else:
        publishers = frozenset(
            draw(_choice(tuple(publisher_ids))) for _ in range(draw(_int_range(1, 2)))
        )
    shapes: dict[str, FieldShape] = {}
    for event_type in covered:
        shapes.update(FIELD_SHAPES[event_type])
    fields: dict[str, FieldRule] = {}
    for name, shape in shapes.items():
        if draw(_int_range(0, 9)) < 6:
            fields[name] = draw(field_rules(shape))
    filterable = tuple(
        shape
        for shape in FIELD_SHAPES[covered[0]].values()
        if shape.classification is not Classification.PERSONAL
    )
    filter_count = 0 if draw(st.booleans()) else draw(_int_range(1, 2))
    filters = [_draw_row_filter(draw, draw(_choice(filterable))) for _ in range(filter_count)]
    valid_from = BASE_TIME + timedelta(
        milliseconds=_draw_offset(draw, -3 * DAY_MILLIS, DAY_MILLIS // 2)
    )
    valid_until = None if draw(_int_range(0, 2)) else _draw_later(draw, valid_from, 6 * DAY_MILLIS)
    return Agreement(
        agreement_id=draw(_choice(tuple(agreement_ids))),
        version=draw(_int_range(1, 3)),
        publishers=publishers,
        subscriber=draw(_choice(tuple(subscriber_ids))),
        event_types=frozenset(covered),
        purpose=draw(_choice(PURPOSES)),
        valid_from=valid_from,
        valid_until=valid_until,
        row_filters=tuple(filters),
        fields=fields,
        limits=_draw_limits(draw) if with_limits else None,
        consent_purpose=_maybe(draw, _choice(PURPOSES)),
    )


# --- consents and partners ----------------------------------------------------------


@st.composite
def consents(
    draw: st.DrawFn,
    consent_id: str | None = None,
    *,
    subjects: Sequence[str] = SUBJECT_IDS,
    controllers: Sequence[str] = PUBLISHER_IDS,
    grantees: Sequence[str] = (*SUBSCRIBER_IDS, "*"),
    purposes: Sequence[str] = PURPOSES,
    scopes: Sequence[str] = CONSENT_SCOPES,
) -> ConsentRecord:
    """A consent given around BASE_TIME; about half expire, a third are withdrawn.

    Repeat a value in ``subjects``, ``controllers``, ... to favour it.
    """
    given_at = BASE_TIME + timedelta(milliseconds=_draw_offset(draw, -3 * DAY_MILLIS, DAY_MILLIS))
    expires_at = _draw_later(draw, given_at, 6 * DAY_MILLIS) if draw(st.booleans()) else None
    withdrawn_at = None
    if draw(_int_range(0, 2)) == 0:
        withdrawn_at = BASE_TIME + timedelta(
            milliseconds=_draw_offset(draw, -2 * DAY_MILLIS, 2 * DAY_MILLIS)
        )
    scope_options = _choice(tuple(scopes))
    return ConsentRecord(
        consent_id=consent_id or f"consent-{draw(_int_range(0, 9999)):04d}",
        subject=draw(_choice(tuple(subjects))),
        controller=draw(_choice(tuple(controllers))),
        grantee=draw(_choice(tuple(grantees))),
        purpose=draw(_choice(tuple(purposes))),
        scope=frozenset(draw(scope_options) for _ in range(draw(_int_range(1, 3)))),
        given_at=given_at,
        expires_at=expires_at,
        withdrawn_at=withdrawn_at,
    )


@st.composite
def partners(draw: st.DrawFn, partner_id: str) -> Partner:
    """A partner with this id, enabled 19 times in 20."""
    roles = {Role.PUBLISHER} if partner_id in PUBLISHER_IDS else set()
    if partner_id in SUBSCRIBER_IDS:
        roles.add(Role.SUBSCRIBER)
    return Partner(
        partner_id=partner_id,
        name=partner_id.replace("-", " ").title(),
        roles=frozenset(roles),
        contact_email=f"data@{partner_id}.example" if draw(st.booleans()) else None,
        enabled=draw(_int_range(0, 19)) != 19,
        key_generation=draw(_int_range(1, 3)),
    )


# --- whole scenarios ----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One input of :func:`ecoshare.domain.policy.evaluate_event`."""

    state: GovernanceState
    event_type: str
    record: dict[str, Any]
    publisher_id: str
    now: datetime
    hash_keys: dict[str, bytes]
    classification: dict[str, Classification]

    @property
    def event_schema(self) -> dict[str, Any]:
        """The catalog schema of the event type."""
        return CATALOG.event_schema(self.event_type)

    def with_state(self, state: GovernanceState) -> Scenario:
        """The same scenario under another governance state."""
        return replace(self, state=state)


def hash_keys_for(subscriber_ids: Sequence[str] = SUBSCRIBER_IDS) -> dict[str, bytes]:
    """Hash keys of the test platform secret for every subscriber."""
    return {
        subscriber: subscriber_hash_key(PLATFORM_SECRET, subscriber)
        for subscriber in subscriber_ids
    }


@st.composite
def governance_states(
    draw: st.DrawFn,
    with_limits: bool = False,
    subjects: Sequence[str] = SUBJECT_IDS,
    controllers: Sequence[str] = PUBLISHER_IDS,
) -> GovernanceState:
    """Partners (one may be missing, a few disabled), agreements and consents.

    ``subjects`` and ``controllers`` weight the consents (repeat a value to favour it).
    """
    missing = draw(_choice((None, *PARTNER_IDS))) if draw(_int_range(0, 3)) == 0 else None
    partner_list = [
        draw(partners(partner_id)) for partner_id in PARTNER_IDS if partner_id != missing
    ]
    agreement_list = [
        draw(agreements(with_limits=with_limits)) for _ in range(draw(_int_range(0, 6)))
    ]
    consent_list = [
        draw(consents(f"consent-{number:02d}", subjects=subjects, controllers=controllers))
        for number in range(draw(_int_range(0, 8)))
    ]
    return GovernanceState(partner_list, agreement_list, consent_list)


@st.composite
def governance_scenarios(
    draw: st.DrawFn, event_types: Sequence[str] = EVENT_TYPES, with_limits: bool = False
) -> Scenario:
    """A state, an event from one of the pool's publishers, and a moment near BASE_TIME.

    Consents favour the event's data subject and publisher, and some are aimed at the
    state's agreements, so that consented personal fields are common.
    """
    event_type = draw(_choice(tuple(event_types)))
    record = draw(event_records(event_type))
    subject = record["contact_subject_id"]
    subjects = SUBJECT_IDS if subject is None else (subject, subject, subject, *SUBJECT_IDS)
    publisher_id = record["publisher_id"]
    state = draw(
        governance_states(
            with_limits=with_limits,
            subjects=subjects,
            controllers=(publisher_id, publisher_id, publisher_id, *PUBLISHER_IDS),
        )
    )
    # Random consents alone rarely line up on subject, controller, grantee and purpose.
    targets = sorted(state.agreements.values(), key=lambda agreement: agreement.agreement_id)
    if subject is not None and targets:
        for number in range(draw(_int_range(1, 4))):
            target = draw(_choice(tuple(targets)))
            consent = draw(
                consents(
                    f"consent-aimed-{number}",
                    subjects=(subject,),
                    controllers=(publisher_id,),
                    grantees=(target.subscriber, "*"),
                    purposes=(target.effective_consent_purpose,),
                    scopes=("personal", "contact_name", "contact_phone"),
                )
            )
            state = state.with_consent(consent)
    return Scenario(
        state=state,
        event_type=event_type,
        record=record,
        publisher_id=publisher_id,
        now=BASE_TIME + timedelta(milliseconds=_draw_offset(draw, -DAY_MILLIS, DAY_MILLIS)),
        hash_keys=hash_keys_for(),
        classification=classification_of(event_type),
    )
