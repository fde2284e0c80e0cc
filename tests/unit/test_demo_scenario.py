"""The PostNL lockdown-day scenario: reproducible, Dutch, well-formed and in time order."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import fastavro
import pytest
import yaml

from ecoshare.demo.dutch_places import (
    POSTCODE_RANGES_BY_GEONAMES_NAME,
    dutch_places,
    postcode_region,
)
from ecoshare.demo.scenario import (
    CARRIER_NORTH_ID,
    CONSENT_FIELDS,
    CONSENT_PURPOSE,
    CONSENTED_FIELDS,
    FRANCHISE_ID,
    LOCATION_AVAILABILITY,
    LOCATION_AVAILABILITY_FIELDS,
    LOCKDOWN_ANNOUNCED_AFTER,
    LOCKDOWN_REASON,
    OPERATOR_ID,
    REFERENCE_DAY_START,
    REFERENCE_LOCATION_COUNT,
    RETAIL_CHAIN_ID,
    SCENARIO_PARTNERS,
    STORE_STATUS_CHANGED,
    STORE_STATUS_FIELDS,
    Location,
    LocationKind,
    carrier_for_postcode,
    epoch_millis,
    generate_consents,
    generate_locations,
    lockdown_day,
)
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.classification import Classification
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.partners import Partner
from ecoshare.domain.policy import evaluate_event
from ecoshare.domain.projection import agreement_schema_problems
from ecoshare.domain.state import GovernanceState
from ecoshare.domain.timestamps import from_epoch_millis

REPO_ROOT = Path(__file__).resolve().parents[2]
GOVERNANCE_YAML = REPO_ROOT / "examples" / "postnl" / "governance.yaml"
EVENT_SCHEMA_DIR = REPO_ROOT / "schemas" / "events"
SEED = 2020
POSTCODE = re.compile(r"^[1-9][0-9]{3} [A-Z]{2}$")

Event = tuple[str, dict[str, Any]]


@pytest.fixture(scope="module")
def locations() -> list[Location]:
    return generate_locations(REFERENCE_LOCATION_COUNT, SEED)


@pytest.fixture(scope="module")
def events(locations: list[Location]) -> list[Event]:
    return list(lockdown_day(locations, REFERENCE_DAY_START, SEED))


@pytest.fixture(scope="module")
def event_schemas() -> dict[str, dict[str, Any]]:
    return {
        event_type: json.loads((EVENT_SCHEMA_DIR / f"{event_type}.v1.avsc").read_text())
        for event_type in (STORE_STATUS_CHANGED, LOCATION_AVAILABILITY)
    }


@pytest.fixture(scope="module")
def governance() -> dict[str, Any]:
    document = yaml.safe_load(GOVERNANCE_YAML.read_text())
    assert isinstance(document, dict)
    return document


def _shops(locations: list[Location]) -> list[Location]:
    return [location for location in locations if location.kind is not LocationKind.PARCEL_LOCKER]


def _announced_ms() -> int:
    return epoch_millis(REFERENCE_DAY_START + LOCKDOWN_ANNOUNCED_AFTER)


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return 6371 * math.hypot(x, y)


# Reproducibility


def test_same_seed_gives_the_same_locations(locations: list[Location]) -> None:
    assert generate_locations(REFERENCE_LOCATION_COUNT, SEED) == locations


def test_another_seed_gives_other_locations(locations: list[Location]) -> None:
    assert generate_locations(REFERENCE_LOCATION_COUNT, SEED + 1) != locations


def test_same_seed_gives_the_same_day(locations: list[Location], events: list[Event]) -> None:
    assert list(lockdown_day(locations, REFERENCE_DAY_START, SEED)) == events


def test_the_day_does_not_depend_on_the_order_of_locations(
    locations: list[Location], events: list[Event]
) -> None:
    assert list(lockdown_day(list(reversed(locations)), REFERENCE_DAY_START, SEED)) == events


def test_same_seed_gives_the_same_consents(locations: list[Location]) -> None:
    first = generate_consents(locations, REFERENCE_DAY_START, SEED)
    second = generate_consents(locations, REFERENCE_DAY_START, SEED)
    assert first == second


# Locations


def test_reference_count_of_locations_with_unique_ids(locations: list[Location]) -> None:
    assert len(locations) == REFERENCE_LOCATION_COUNT
    assert len({location.location_id for location in locations}) == REFERENCE_LOCATION_COUNT


def test_every_kind_is_present_in_its_share(locations: list[Location]) -> None:
    kinds = Counter(location.kind for location in locations)
    assert kinds[LocationKind.SERVICE_POINT] > REFERENCE_LOCATION_COUNT / 2
    assert kinds[LocationKind.PARCEL_LOCKER] > 400
    assert kinds[LocationKind.CHAIN_STORE] > 500
    assert kinds[LocationKind.FRANCHISE_SHOP] > 300


@pytest.mark.parametrize("count", [0, 1, 3, 17])
def test_small_counts_are_generated_exactly(count: int) -> None:
    assert len(generate_locations(count, SEED)) == count


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        generate_locations(-1, SEED)


def test_names_and_publishers_follow_the_kind(locations: list[Location]) -> None:
    for location in locations:
        if location.kind is LocationKind.SERVICE_POINT:
            assert location.name.startswith("PostNL-punt ")
            assert location.publisher_id == OPERATOR_ID
        elif location.kind is LocationKind.PARCEL_LOCKER:
            assert location.name.startswith(f"PostNL Pakketautomaat {location.city}")
            assert location.publisher_id == OPERATOR_ID
            assert location.opening_hours == "00:00-24:00"
        elif location.kind is LocationKind.CHAIN_STORE:
            assert location.publisher_id == RETAIL_CHAIN_ID
        else:
            assert location.publisher_id == FRANCHISE_ID


def test_only_franchise_shops_carry_an_owner(locations: list[Location]) -> None:
    for location in locations:
        contact = (location.contact_subject_id, location.contact_name, location.contact_phone)
        if location.kind is LocationKind.FRANCHISE_SHOP:
            assert all(contact)
            assert location.contact_subject_id is not None
            assert location.contact_subject_id.startswith("owner-")
            assert location.contact_name is not None
            # The public shop name must not give away the owner.
            assert location.contact_name not in location.name
        else:
            assert contact == (None, None, None)


def test_house_numbers_have_no_leading_zero(locations: list[Location]) -> None:
    assert all(re.fullmatch(r"[1-9][0-9]*(-[A-Z])?", loc.house_number) for loc in locations)


def test_postcodes_have_the_dutch_format(locations: list[Location]) -> None:
    for location in locations:
        assert POSTCODE.match(location.postal_code), location.postal_code
        assert location.postal_code[-2:] not in {"SA", "SD", "SS"}


def test_postcodes_lie_in_their_place_range(locations: list[Location]) -> None:
    ranges_by_city: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for city, low, high in POSTCODE_RANGES_BY_GEONAMES_NAME.values():
        ranges_by_city[city].append((low, high))
    for location in locations:
        number = int(location.postal_code[:4])
        assert any(low <= number <= high for low, high in ranges_by_city[location.city])


@pytest.mark.parametrize(
    ("city", "first_digit"),
    [
        ("Amsterdam", "1"),
        ("Haarlem", "2"),
        ("Den Haag", "2"),
        ("Rotterdam", "3"),
        ("Utrecht", "3"),
        ("Breda", "4"),
        ("Eindhoven", "5"),
        ("Maastricht", "6"),
        ("Nijmegen", "6"),
        ("Enschede", "7"),
        ("Zwolle", "8"),
        ("Groningen", "9"),
    ],
)
def test_well_known_cities_get_their_postcode_digit(
    locations: list[Location], city: str, first_digit: str
) -> None:
    in_city = [location for location in locations if location.city == city]
    assert in_city
    assert {location.postal_code[0] for location in in_city} == {first_digit}


def test_postcode_digits_follow_the_map(locations: list[Location]) -> None:
    latitudes: dict[str, list[float]] = defaultdict(list)
    for location in locations:
        latitudes[location.postal_code[0]].append(location.latitude)
    mean_latitude = {digit: mean(values) for digit, values in latitudes.items()}
    # 1-4 run from Noord-Holland south to Zeeland, 6-9 from Limburg north to Groningen.
    assert mean_latitude["1"] > mean_latitude["2"] > mean_latitude["3"] > mean_latitude["4"]
    assert mean_latitude["6"] < mean_latitude["7"] < mean_latitude["8"] < mean_latitude["9"]


def test_every_postcode_region_is_one_area(locations: list[Location]) -> None:
    by_region: dict[int, list[Location]] = defaultdict(list)
    for location in locations:
        by_region[postcode_region(location.postal_code)].append(location)
    for region, members in by_region.items():
        centre_lat = mean(location.latitude for location in members)
        centre_lon = mean(location.longitude for location in members)
        farthest = max(
            _distance_km(centre_lat, centre_lon, location.latitude, location.longitude)
            for location in members
        )
        assert farthest < 60, f"region {region} spreads {farthest:.0f} km"


def test_locations_lie_in_the_netherlands_near_their_place(locations: list[Location]) -> None:
    for location in locations:
        assert 50.7 < location.latitude < 53.6
        assert 3.3 < location.longitude < 7.3


def test_every_place_in_the_table_is_known_to_geonames() -> None:
    found = {place.geonames_name for place in dutch_places()}
    assert found == set(POSTCODE_RANGES_BY_GEONAMES_NAME)
    for place in dutch_places():
        assert 10 <= place.postcode_region <= 99
        assert place.postcode_low <= place.postcode_high
        assert place.postcode_low // 100 == place.postcode_high // 100


def test_carriers_split_the_postcode_regions() -> None:
    assert carrier_for_postcode("1017 CT") == CARRIER_NORTH_ID
    assert carrier_for_postcode("4999 ZZ") == CARRIER_NORTH_ID
    assert carrier_for_postcode("5000 AA") == "carrier-south"
    assert carrier_for_postcode("9999 XX") == "carrier-south"


# Events


def _python_type_ok(value: object, avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return any(_python_type_ok(value, branch) for branch in avro_type)
    if avro_type == "null":
        return value is None
    if avro_type == "string":
        return type(value) is str
    if avro_type == "double":
        return type(value) is float
    if avro_type == "int":
        return type(value) is int
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-millis":
        return type(value) is int
    if isinstance(avro_type, dict) and avro_type["type"] == "enum":
        return type(value) is str and value in avro_type["symbols"]
    raise AssertionError(f"unexpected Avro type {avro_type!r}")


def test_records_have_exactly_the_catalog_fields(events: list[Event]) -> None:
    expected = {
        STORE_STATUS_CHANGED: set(STORE_STATUS_FIELDS),
        LOCATION_AVAILABILITY: set(LOCATION_AVAILABILITY_FIELDS),
    }
    assert {event_type for event_type, _ in events} == set(expected)
    for event_type, record in events:
        assert set(record) == expected[event_type]


def test_field_lists_match_the_schemas(event_schemas: dict[str, dict[str, Any]]) -> None:
    names = {
        event_type: tuple(field["name"] for field in schema["fields"])
        for event_type, schema in event_schemas.items()
    }
    assert names[STORE_STATUS_CHANGED] == STORE_STATUS_FIELDS
    assert names[LOCATION_AVAILABILITY] == LOCATION_AVAILABILITY_FIELDS


def test_records_have_the_python_types_of_their_schema(
    events: list[Event], event_schemas: dict[str, dict[str, Any]]
) -> None:
    field_types = {
        event_type: {field["name"]: field["type"] for field in schema["fields"]}
        for event_type, schema in event_schemas.items()
    }
    for event_type, record in events:
        for name, value in record.items():
            assert _python_type_ok(value, field_types[event_type][name]), (event_type, name, value)


def test_records_validate_against_the_avro_schemas(
    events: list[Event], event_schemas: dict[str, dict[str, Any]]
) -> None:
    parsed = {name: fastavro.parse_schema(schema) for name, schema in event_schemas.items()}
    for event_type, record in events:
        assert fastavro.validate(record, parsed[event_type], raise_errors=True)


def test_event_ids_are_unique_uuid4(events: list[Event]) -> None:
    ids = [record["event_id"] for _, record in events]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(event_id)) == event_id for event_id in ids)
    assert {uuid.UUID(event_id).version for event_id in ids} == {4}


def test_events_come_in_time_order(events: list[Event]) -> None:
    occurred = [record["occurred_at"] for _, record in events]
    published = [record["published_at"] for _, record in events]
    assert occurred == sorted(occurred)
    assert published == sorted(published)
    for _, record in events:
        assert 0 < record["published_at"] - record["occurred_at"] <= 5_000


def test_events_fall_on_the_simulated_day(events: list[Event]) -> None:
    day_start = epoch_millis(REFERENCE_DAY_START)
    day_end = epoch_millis(REFERENCE_DAY_START + timedelta(days=1))
    for _, record in events:
        assert day_start <= record["occurred_at"] < day_end


def test_records_carry_their_location(locations: list[Location], events: list[Event]) -> None:
    by_id = {location.location_id: location for location in locations}
    for _, record in events:
        location = by_id[record["location_id"]]
        assert record["publisher_id"] == location.publisher_id
        assert record["postal_code"] == location.postal_code
        assert record["contact_name"] == location.contact_name


def test_availability_stays_within_capacity(events: list[Event]) -> None:
    for event_type, record in events:
        if event_type == LOCATION_AVAILABILITY:
            assert 0 <= record["available"] <= record["capacity"]


def test_mornings_open_the_shops(locations: list[Location], events: list[Event]) -> None:
    opened = {
        record["location_id"]
        for event_type, record in events
        if event_type == STORE_STATUS_CHANGED
        and record["status"] == "OPEN"
        and record["occurred_at"] < _announced_ms()
    }
    shops = _shops(locations)
    assert sum(location.location_id in opened for location in shops) > 0.9 * len(shops)


def test_lockdown_closes_a_sizeable_share_of_shops(
    locations: list[Location], events: list[Event]
) -> None:
    closures = [
        record
        for event_type, record in events
        if event_type == STORE_STATUS_CHANGED and record["reason"] == LOCKDOWN_REASON
    ]
    assert all(record["status"] == "TEMPORARILY_CLOSED" for record in closures)
    assert all(record["occurred_at"] >= _announced_ms() for record in closures)
    closed = {record["location_id"] for record in closures}
    shop_ids = {location.location_id for location in _shops(locations)}
    assert closed <= shop_ids
    assert len(closed) >= 0.25 * len(shop_ids)


def test_lockdown_limits_some_shops(events: list[Event]) -> None:
    limited = [
        record
        for event_type, record in events
        if event_type == STORE_STATUS_CHANGED and record["status"] == "LIMITED"
    ]
    assert len(limited) > 100
    assert all(record["occurred_at"] >= _announced_ms() for record in limited)
    assert all(record["reason"].startswith(LOCKDOWN_REASON) for record in limited)


def test_every_shop_speaks_after_the_announcement(
    locations: list[Location], events: list[Event]
) -> None:
    # So that a consent withdrawn before noon shows in each shop's next event.
    heard = {
        record["location_id"]
        for event_type, record in events
        if event_type == STORE_STATUS_CHANGED and record["occurred_at"] >= _announced_ms()
    }
    assert all(location.location_id in heard for location in _shops(locations))


def test_lockers_report_availability_all_day(events: list[Event]) -> None:
    hours = {
        (record["occurred_at"] - epoch_millis(REFERENCE_DAY_START)) // 3_600_000
        for event_type, record in events
        if event_type == LOCATION_AVAILABILITY and record["capacity_kind"] == "PARCEL_LOCKER_SLOTS"
    }
    assert hours == set(range(24))


def test_a_naive_start_is_refused(locations: list[Location]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(lockdown_day(locations, datetime(2020, 3, 23), SEED))


# Consents


def test_consents_have_exactly_the_consent_fields(locations: list[Location]) -> None:
    consents = generate_consents(locations, REFERENCE_DAY_START, SEED)
    assert consents.records
    for record in consents.records:
        assert tuple(record) == CONSENT_FIELDS
        ConsentRecord.from_avro(record)


def test_consents_grant_the_owners_carrier_their_contact(locations: list[Location]) -> None:
    owners = {
        location.contact_subject_id: location
        for location in locations
        if location.contact_subject_id is not None
    }
    start_ms = epoch_millis(REFERENCE_DAY_START)
    consents = generate_consents(locations, REFERENCE_DAY_START, SEED)
    for record in consents.records:
        owner = owners[record["subject"]]
        assert record["controller"] == FRANCHISE_ID
        assert record["grantee"] == carrier_for_postcode(owner.postal_code)
        assert record["purpose"] == CONSENT_PURPOSE
        assert record["scope"] == list(CONSENTED_FIELDS)
        assert record["given_at"] < start_ms
        assert record["expires_at"] is None or record["expires_at"] > start_ms
        assert record["withdrawn_at"] is None
    assert 0.5 * len(owners) < len(consents.records) < 0.9 * len(owners)
    assert {record["grantee"] for record in consents.records} == {
        CARRIER_NORTH_ID,
        "carrier-south",
    }


def test_the_consent_to_withdraw_is_an_amsterdam_owners(locations: list[Location]) -> None:
    consents = generate_consents(locations, REFERENCE_DAY_START, SEED)
    chosen = consents.consent_to_withdraw()
    assert chosen["grantee"] == CARRIER_NORTH_ID
    owner = next(loc for loc in locations if loc.contact_subject_id == chosen["subject"])
    assert owner.city == "Amsterdam"
    chosen["purpose"] = "changed"
    assert consents.consent_to_withdraw()["purpose"] == CONSENT_PURPOSE


def test_withdrawal_sets_only_withdrawn_at(locations: list[Location]) -> None:
    consents = generate_consents(locations, REFERENCE_DAY_START, SEED)
    at = REFERENCE_DAY_START + timedelta(hours=10, minutes=30)
    withdrawn = consents.withdrawal(at)
    assert withdrawn["withdrawn_at"] == epoch_millis(at)
    assert {**withdrawn, "withdrawn_at": None} == consents.consent_to_withdraw()
    assert ConsentRecord.from_avro(withdrawn).is_active(at) is False


def test_one_owner_always_consents(locations: list[Location]) -> None:
    consents = generate_consents(locations, REFERENCE_DAY_START, SEED, consenting_share=0.0)
    assert len(consents.records) == 1


def test_consents_need_a_franchise_owner(locations: list[Location]) -> None:
    without_owners = [location for location in locations if location.contact_subject_id is None]
    with pytest.raises(ValueError, match="franchise"):
        generate_consents(without_owners, REFERENCE_DAY_START, SEED)


# The declarative governance file


def test_governance_file_has_partners_and_agreements(governance: dict[str, Any]) -> None:
    assert set(governance) == {"partners", "agreements"}
    for partner in governance["partners"]:
        assert set(partner) == {"partner_id", "name", "roles", "contact_email"}
        assert set(partner["roles"]) <= {"publisher", "subscriber", "operator"}
    for agreement in governance["agreements"]:
        assert set(agreement) == {
            "agreement_id",
            "version",
            "publishers",
            "subscriber",
            "event_types",
            "purpose",
            "valid_from",
            "valid_until",
            "row_filters",
            "fields",
            "limits",
            "consent_purpose",
        }
        assert isinstance(agreement["valid_from"], str)
        datetime.fromisoformat(agreement["valid_from"])
        for rule in agreement["fields"].values():
            assert rule["action"] in {"deliver", "drop", "mask", "hash", "generalise"}


def test_governance_partners_are_the_scenario_partners(governance: dict[str, Any]) -> None:
    declared = [Partner.model_validate(partner) for partner in governance["partners"]]
    assert [(p.partner_id, p.name, sorted(p.roles), p.contact_email) for p in declared] == [
        (p.partner_id, p.name, sorted(p.roles), p.contact_email) for p in SCENARIO_PARTNERS
    ]


def test_governance_agreements_validate_against_the_catalog(
    governance: dict[str, Any], event_schemas: dict[str, dict[str, Any]]
) -> None:
    partners = {partner["partner_id"]: partner for partner in governance["partners"]}
    for raw in governance["agreements"]:
        agreement = Agreement.model_validate(raw)
        assert agreement_schema_problems(agreement, event_schemas) == []
        assert "subscriber" in partners[agreement.subscriber]["roles"]
        for publisher in agreement.publishers:
            assert "publisher" in partners[publisher]["roles"]


def _agreements_of(governance: dict[str, Any], subscriber: str) -> list[dict[str, Any]]:
    return [item for item in governance["agreements"] if item["subscriber"] == subscriber]


def test_carriers_split_the_country_by_postcode(governance: dict[str, Any]) -> None:
    (north,) = _agreements_of(governance, CARRIER_NORTH_ID)
    (south,) = _agreements_of(governance, "carrier-south")
    assert north["row_filters"] == [
        {"field": "postal_code", "op": "prefix", "prefixes": [str(n) for n in range(10, 50)]}
    ]
    assert south["row_filters"] == [
        {"field": "postal_code", "op": "prefix", "prefixes": [str(n) for n in range(50, 100)]}
    ]
    for carrier in (north, south):
        assert set(carrier["publishers"]) == {OPERATOR_ID, RETAIL_CHAIN_ID, FRANCHISE_ID}
        assert carrier["event_types"] == [STORE_STATUS_CHANGED]
        assert carrier["consent_purpose"] == CONSENT_PURPOSE
        for field in (*CONSENTED_FIELDS, "location_name", "street", "status"):
            assert carrier["fields"][field]["action"] == "deliver"
        assert "opening_hours_today" in carrier["fields"]


def test_carrier_south_gets_coarser_positions_and_times(governance: dict[str, Any]) -> None:
    (south,) = _agreements_of(governance, "carrier-south")
    assert south["fields"]["latitude"] == {"action": "generalise", "decimals": 2}
    assert south["fields"]["longitude"] == {"action": "generalise", "decimals": 2}
    assert south["fields"]["effective_until"] == {"action": "generalise", "truncate_to": "hour"}


def test_consumer_app_gets_no_personal_or_internal_fields(governance: dict[str, Any]) -> None:
    agreements = _agreements_of(governance, "consumer-app")
    assert {event_type for item in agreements for event_type in item["event_types"]} == {
        STORE_STATUS_CHANGED,
        LOCATION_AVAILABILITY,
    }
    for agreement in agreements:
        assert set(agreement["publishers"]) == {OPERATOR_ID, RETAIL_CHAIN_ID}
        assert agreement["consent_purpose"] is None
        assert not {"contact_name", "contact_phone", "contact_subject_id", "reason"} & set(
            agreement["fields"]
        )
        assert agreement["fields"]["location_id"] == {"action": "deliver"}
        assert agreement["fields"]["latitude"] == {"action": "generalise", "decimals": 3}


# The example file applied to the scenario by the reference decision function


def test_example_governance_delivers_contacts_only_under_consent(
    governance: dict[str, Any], event_schemas: dict[str, dict[str, Any]]
) -> None:
    small_set = generate_locations(400, SEED)
    consents = generate_consents(small_set, REFERENCE_DAY_START, SEED)
    withdrawn_at = REFERENCE_DAY_START + timedelta(hours=10, minutes=30)
    withdrawal = consents.withdrawal(withdrawn_at)
    partners = [Partner.model_validate(partner) for partner in governance["partners"]]
    agreements = [Agreement.model_validate(agreement) for agreement in governance["agreements"]]
    before = GovernanceState(partners, agreements, map(ConsentRecord.from_avro, consents.records))
    after = GovernanceState(
        partners,
        agreements,
        [*map(ConsentRecord.from_avro, consents.records), ConsentRecord.from_avro(withdrawal)],
    )
    classification = {
        event_type: {
            field["name"]: Classification(field["classification"]) for field in schema["fields"]
        }
        for event_type, schema in event_schemas.items()
    }
    consented = {(record["subject"], record["grantee"]) for record in consents.records}
    contacts_delivered: Counter[str] = Counter()
    withdrawn_subject_heard_after = False

    for event_type, record in lockdown_day(small_set, REFERENCE_DAY_START, SEED):
        now = from_epoch_millis(record["published_at"])
        state = after if now >= withdrawn_at else before
        for decision in evaluate_event(
            record, event_type, record["publisher_id"], state, classification[event_type], now, {}
        ):
            if decision.record is None:
                continue
            subject = record["contact_subject_id"]
            name = decision.record.get("contact_name")
            if decision.subscriber_id == "consumer-app":
                assert "contact_name" not in decision.fields_delivered
                continue
            if name is not None:
                contacts_delivered[decision.subscriber_id] += 1
                assert (subject, decision.subscriber_id) in consented
            if subject == withdrawal["subject"] and now >= withdrawn_at:
                withdrawn_subject_heard_after = True
                assert name is None
            if decision.subscriber_id == "carrier-south":
                latitude = decision.record["latitude"]
                assert isinstance(latitude, float)
                assert round(latitude, 2) == latitude

    assert contacts_delivered[CARRIER_NORTH_ID] > 0
    assert contacts_delivered["carrier-south"] > 0
    assert withdrawn_subject_heard_after
