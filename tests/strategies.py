"""Hypothesis strategies for catalog events, agreements, consents and governance states.

Values are drawn from small shared pools (partner ids, postal codes, cities, data
subjects, purposes, a two-week window of time around 16 March 2020), so that generated
row filters, agreements and consents often match generated events: the interesting
cases (delivered, filtered, consented, expired) all occur within a few hundred examples.

Reusable by any test that needs the catalog's shapes: ``event_records`` for Avro dicts
as fastavro decodes them, ``agreements`` for agreements that fit the catalog's field
types, and ``governance_scenarios`` for a whole evaluation input.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ecoshare.catalog import Catalog, load_catalog
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
from ecoshare.settings import REPO_ROOT

CATALOG: Catalog = load_catalog(REPO_ROOT / "schemas")
EVENT_TYPES: tuple[str, ...] = CATALOG.event_types

BASE_TIME = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)
"""The first working day of the Dutch 'intelligent lockdown'."""
TIME_SPAN_MILLIS = 7 * 24 * 3_600_000
DAY_MILLIS = 86_400_000
_ONE_MS = timedelta(milliseconds=1)
PLATFORM_SECRET = b"ecoshare-test-platform-secret"

PUBLISHER_IDS = ("albert-shops", "bakker-bart", "postnl")
SUBSCRIBER_IDS = ("carrier-dhl", "carrier-gls", "city-utrecht", "postnl")
PARTNER_IDS = tuple(sorted({*PUBLISHER_IDS, *SUBSCRIBER_IDS}))
AGREEMENT_IDS = ("agr-01", "agr-02", "agr-03", "agr-04", "agr-05", "agr-06")
SUBJECT_IDS = ("owner-anna", "owner-bram", "owner-cor")
PURPOSES = ("last-mile-routing", "footfall-analytics", "public-information")
PERSONAL_SCOPES = ("contact_name", "contact_phone", "personal", "internal", "public")

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


# --- values -------------------------------------------------------------------------


def timestamps(span_millis: int = TIME_SPAN_MILLIS) -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes at millisecond precision within ``span_millis`` of BASE_TIME."""
    return offsets(-span_millis, span_millis)


def offsets(low_millis: int, high_millis: int) -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes from BASE_TIME + low to BASE_TIME + high (milliseconds).

    Drawn as a whole number of hours plus milliseconds within the hour, which spreads the
    values evenly over the window (plain integers favour its middle and ends) and often
    lands on exact hour boundaries.
    """
    hour = 3_600_000
    return st.builds(
        lambda hours, millis: (
            BASE_TIME
            + timedelta(milliseconds=min(high_millis, max(low_millis, hours * hour + millis)))
        ),
        st.integers(low_millis // hour, high_millis // hour),
        st.integers(0, hour - 1),
    )


def _later_than(start: datetime, max_millis: int) -> st.SearchStrategy[datetime]:
    return offsets(0, max_millis).map(lambda moment: start + (moment - BASE_TIME) + _ONE_MS)


def _pooled(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from(POOLS[name])


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _latitudes() -> st.SearchStrategy[float]:
    return st.floats(*LATITUDE_RANGE, allow_nan=False, allow_infinity=False)


def _longitudes() -> st.SearchStrategy[float]:
    return st.floats(*LONGITUDE_RANGE, allow_nan=False, allow_infinity=False)


def _counts() -> st.SearchStrategy[int]:
    return st.integers(*COUNT_RANGE)


@st.composite
def _contact(draw: st.DrawFn) -> dict[str, str | None]:
    subject_present = draw(st.integers(0, 3)) > 0
    return {
        "contact_subject_id": draw(_pooled("contact_subject_id")) if subject_present else None,
        "contact_name": draw(_optional(_pooled("contact_name"))),
        "contact_phone": draw(_optional(_pooled("contact_phone"))),
    }


@st.composite
def store_status_events(
    draw: st.DrawFn, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> StoreStatusChanged:
    """A valid ``StoreStatusChanged`` from one of ``publisher_ids``."""
    effective_from = draw(timestamps())
    effective_until = draw(
        _optional(
            st.integers(1, 3 * 86_400_000).map(
                lambda ms: effective_from + timedelta(milliseconds=ms)
            )
        )
    )
    occurred_at = draw(timestamps())
    return StoreStatusChanged(
        event_id=str(draw(st.uuids())),
        publisher_id=draw(st.sampled_from(publisher_ids)),
        location_id=draw(_pooled("location_id")),
        location_name=draw(_pooled("location_name")),
        status=draw(st.sampled_from(StoreStatus)),
        reason=draw(_optional(_pooled("reason"))),
        opening_hours_today=draw(_optional(_pooled("opening_hours_today"))),
        effective_from=effective_from,
        effective_until=effective_until,
        street=draw(_pooled("street")),
        house_number=draw(_pooled("house_number")),
        postal_code=draw(_pooled("postal_code")),
        city=draw(_pooled("city")),
        latitude=draw(_latitudes()),
        longitude=draw(_longitudes()),
        **draw(_contact()),
        occurred_at=occurred_at,
        published_at=occurred_at + timedelta(milliseconds=draw(st.integers(0, 60_000))),
    )


@st.composite
def location_availability_events(
    draw: st.DrawFn, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> LocationAvailability:
    """A valid ``LocationAvailability`` from one of ``publisher_ids``."""
    capacity = draw(_counts())
    occurred_at = draw(timestamps())
    kind = draw(st.sampled_from(CapacityKind))
    category = draw(_pooled("category")) if kind is CapacityKind.STOCK_LEVEL else None
    return LocationAvailability(
        event_id=str(draw(st.uuids())),
        publisher_id=draw(st.sampled_from(publisher_ids)),
        location_id=draw(_pooled("location_id")),
        location_name=draw(_pooled("location_name")),
        capacity_kind=kind,
        category=category,
        available=draw(st.integers(0, capacity)),
        capacity=capacity,
        postal_code=draw(_pooled("postal_code")),
        city=draw(_pooled("city")),
        latitude=draw(_latitudes()),
        longitude=draw(_longitudes()),
        **draw(_contact()),
        occurred_at=occurred_at,
        published_at=occurred_at + timedelta(milliseconds=draw(st.integers(0, 60_000))),
    )


_EVENT_STRATEGIES = {
    "StoreStatusChanged": store_status_events,
    "LocationAvailability": location_availability_events,
}


def events(
    event_type: str, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> st.SearchStrategy[CatalogEvent]:
    """Valid event models of ``event_type``."""
    strategy: st.SearchStrategy[CatalogEvent] = _EVENT_STRATEGIES[event_type](publisher_ids)
    return strategy


def event_records(
    event_type: str, publisher_ids: Sequence[str] = PUBLISHER_IDS
) -> st.SearchStrategy[dict[str, Any]]:
    """Avro dicts of ``event_type`` as fastavro decodes them (aware UTC datetimes)."""
    return events(event_type, publisher_ids).map(lambda event: event.to_avro())


# --- agreements ---------------------------------------------------------------------


def field_rules(shape: FieldShape) -> st.SearchStrategy[FieldRule]:
    """Rules that fit the field's type: generalise only numbers and timestamps."""
    options = [
        st.just(FieldRule(action=FieldAction.DELIVER)),
        st.just(FieldRule(action=FieldAction.DROP)),
        st.just(FieldRule(action=FieldAction.HASH)),
        st.integers(0, 8).map(lambda keep: FieldRule(action=FieldAction.MASK, keep_last=keep)),
    ]
    if shape.kind == "double":
        options.append(
            st.integers(0, 4).map(
                lambda decimals: FieldRule(action=FieldAction.GENERALISE, decimals=decimals)
            )
        )
    if shape.kind == "int":
        options.append(
            st.integers(-2, 1).map(
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


def _operand_values(shape: FieldShape) -> st.SearchStrategy[Any]:
    if shape.kind == "enum":
        return st.sampled_from(shape.symbols)
    if shape.kind == "int":
        return _counts()
    if shape.kind == "double":
        low, high = LATITUDE_RANGE if shape.name == "latitude" else LONGITUDE_RANGE
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if shape.kind == "timestamp":
        return timestamps().map(to_epoch_millis)
    if shape.name in POOLS:
        return _pooled(shape.name)
    return st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=4)


@st.composite
def row_filters(draw: st.DrawFn, shape: FieldShape) -> RowFilter:
    """A filter on ``shape``'s field whose operands come from the generated values."""
    values = _operand_values(shape)
    ops = ["equals", "in", "range"] if shape.kind != "enum" else ["equals", "in"]
    if shape.kind == "string":
        ops.append("prefix")
    op = draw(st.sampled_from(ops))
    if op == "equals":
        value = draw(_optional(values) if shape.nullable else values)
        return RowFilter(field=shape.name, op="equals", value=value)
    if op == "in":
        return RowFilter(
            field=shape.name, op="in", values=draw(st.lists(values, min_size=1, max_size=3))
        )
    if op == "prefix":
        if shape.name == "postal_code" and draw(st.booleans()):
            low = draw(st.integers(10, 99))
            high = draw(st.integers(low, min(99, low + 20)))
            return RowFilter.model_validate(
                {"field": shape.name, "prefix_range": [str(low), str(high)]}
            )
        prefixes = draw(
            st.lists(
                st.tuples(values, st.integers(1, 3)).map(lambda pair: pair[0][: pair[1]]),
                min_size=1,
                max_size=3,
            )
        )
        return RowFilter(field=shape.name, op="prefix", prefixes=prefixes)
    bounds = sorted(draw(st.lists(values, min_size=2, max_size=2)))
    low, high = bounds
    which = draw(st.sampled_from(["both", "low", "high"]))
    return RowFilter(
        field=shape.name,
        op="range",
        low=low if which != "high" else None,
        high=high if which != "low" else None,
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

    Row filters test non-personal fields of the first covered event type; rules may name
    any field of any covered type. Validity starts between three days before and half a
    day after BASE_TIME.
    """
    covered = sorted(draw(st.sets(st.sampled_from(event_types), min_size=1)))
    publishers = draw(
        st.just(frozenset({"*"}))
        | st.frozensets(st.sampled_from(publisher_ids), min_size=1, max_size=2)
    )
    shapes: dict[str, FieldShape] = {}
    for event_type in covered:
        shapes.update(FIELD_SHAPES[event_type])
    fields: dict[str, FieldRule] = {}
    for name, shape in shapes.items():
        if draw(st.integers(0, 9)) < 6:
            fields[name] = draw(field_rules(shape))
    filterable = [
        shape
        for shape in FIELD_SHAPES[covered[0]].values()
        if shape.classification is not Classification.PERSONAL
    ]
    filters = draw(st.lists(st.sampled_from(filterable).flatmap(row_filters), max_size=2))
    valid_from = draw(offsets(-3 * DAY_MILLIS, DAY_MILLIS // 2))
    valid_until = draw(st.none() | st.none() | _later_than(valid_from, 6 * DAY_MILLIS))
    limits = None
    if with_limits:
        limits = draw(
            _optional(
                st.builds(
                    Limits,
                    max_events_per_minute=_optional(st.integers(1, 5)),
                    max_events_per_day=_optional(st.integers(1, 10)),
                )
            )
        )
    return Agreement(
        agreement_id=draw(st.sampled_from(agreement_ids)),
        version=draw(st.integers(1, 3)),
        publishers=publishers,
        subscriber=draw(st.sampled_from(subscriber_ids)),
        event_types=frozenset(covered),
        purpose=draw(st.sampled_from(PURPOSES)),
        valid_from=valid_from,
        valid_until=valid_until,
        row_filters=tuple(filters),
        fields=fields,
        limits=limits,
        consent_purpose=draw(_optional(st.sampled_from(PURPOSES))),
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
    scopes: Sequence[str] = PERSONAL_SCOPES,
) -> ConsentRecord:
    """A consent over the shared pools, given around BASE_TIME; some expire or are withdrawn."""
    given_at = draw(offsets(-3 * DAY_MILLIS, DAY_MILLIS))
    expires_at = draw(_optional(_later_than(given_at, 6 * DAY_MILLIS)))
    return ConsentRecord(
        consent_id=consent_id or f"consent-{draw(st.integers(0, 10_000)):05d}",
        subject=draw(st.sampled_from(subjects)),
        controller=draw(st.sampled_from(controllers)),
        grantee=draw(st.sampled_from(grantees)),
        purpose=draw(st.sampled_from(purposes)),
        scope=draw(st.frozensets(st.sampled_from(scopes), min_size=1, max_size=3)),
        given_at=given_at,
        expires_at=expires_at,
        withdrawn_at=draw(st.none() | st.none() | offsets(-2 * DAY_MILLIS, 2 * DAY_MILLIS)),
    )


@st.composite
def partners(draw: st.DrawFn, partner_id: str) -> Partner:
    """A partner with this id, enabled most of the time."""
    roles = {Role.PUBLISHER} if partner_id in PUBLISHER_IDS else set()
    if partner_id in SUBSCRIBER_IDS:
        roles.add(Role.SUBSCRIBER)
    return Partner(
        partner_id=partner_id,
        name=partner_id.replace("-", " ").title(),
        roles=frozenset(roles),
        contact_email=draw(_optional(st.just(f"data@{partner_id}.example"))),
        enabled=draw(st.integers(0, 19)) > 0,
        key_generation=draw(st.integers(1, 3)),
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
    """Partners (some missing or disabled), agreements and consents over the pools.

    ``subjects`` and ``controllers`` weight the consents (repeat a value to favour it).
    """
    known = draw(st.lists(st.sampled_from(PARTNER_IDS), unique=True, min_size=len(PARTNER_IDS) - 1))
    partner_list = [draw(partners(partner_id)) for partner_id in sorted(known)]
    agreement_list = draw(st.lists(agreements(with_limits=with_limits), max_size=6))
    consent_numbers = draw(st.lists(st.integers(0, 99), unique=True, max_size=10))
    consent_list = [
        draw(consents(f"consent-{number:02d}", subjects=subjects, controllers=controllers))
        for number in consent_numbers
    ]
    return GovernanceState(partner_list, agreement_list, consent_list)


@st.composite
def governance_scenarios(
    draw: st.DrawFn, event_types: Sequence[str] = EVENT_TYPES, with_limits: bool = False
) -> Scenario:
    """A state, an event from one of the pool's publishers, and a moment near BASE_TIME.

    Consents favour the event's data subject and publisher, so that consented personal
    fields are common.
    """
    event_type = draw(st.sampled_from(event_types))
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
    # Aim some consents at the agreements' subscribers and consent purposes; random
    # consents alone rarely line up on subject, controller, grantee and purpose at once.
    targets = sorted(state.agreements.values(), key=lambda agreement: agreement.agreement_id)
    if subject is not None and targets:
        for number in draw(st.lists(st.integers(100, 199), unique=True, min_size=1, max_size=4)):
            target = draw(st.sampled_from(targets))
            consent = draw(
                consents(
                    f"consent-{number}",
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
        now=draw(offsets(-DAY_MILLIS, DAY_MILLIS)),
        hash_keys=hash_keys_for(),
        classification=classification_of(event_type),
    )
