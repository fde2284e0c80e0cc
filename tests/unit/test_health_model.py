"""The ecosystem health model, driven by scripted days with an explicit clock."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ecoshare.adapters.metrics import HealthMetrics
from ecoshare.codec.audit_blocks import DecisionRecord, QuarantineRecord
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.timestamps import to_epoch_millis
from ecoshare.health import AcceptedEvent, DecisionTally, EcosystemHealth

T0 = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
SSC = "StoreStatusChanged"
LA = "LocationAvailability"
_ids = itertools.count()


def ms(moment: datetime) -> int:
    return to_epoch_millis(moment)


def event(
    publisher: str,
    at: datetime,
    *,
    location: str = "loc-1",
    event_type: str = SSC,
    published: datetime | None = None,
) -> AcceptedEvent:
    return AcceptedEvent(
        event_id=f"ev-{next(_ids)}",
        event_type=event_type,
        publisher_id=publisher,
        location_id=location,
        published_ms=ms(published or at),
        decided_at_ms=ms(at),
    )


def decision(
    ev: AcceptedEvent,
    subscriber: str,
    *,
    agreement: str | None = "agr-1",
    outcome: str = "delivered",
    reason: str | None = None,
) -> DecisionRecord:
    return DecisionRecord(
        event_id=ev.event_id,
        event_type=ev.event_type,
        publisher_id=ev.publisher_id,
        location_id=ev.location_id,
        published_ms=ev.published_ms,
        subscriber_id=subscriber,
        outcome=outcome,
        reason=reason,
        agreement_id=agreement,
        agreement_version=1 if agreement else None,
        consent_ids=(),
        fields_delivered=(),
        fields_dropped=(),
        fields_transformed={},
        personal_fields_without_consent=(),
        source=f"ingress.{ev.event_type}:0",
        offset=0,
        decided_at_ms=ev.decided_at_ms,
        state_version="v",
    )


def refusal(
    publisher: str | None, at: datetime, reason: str = "schema-invalid"
) -> QuarantineRecord:
    return QuarantineRecord(
        event_id=None,
        event_type=SSC,
        publisher_id=publisher,
        reason=reason,
        detail="bad",
        source=f"ingress.{SSC}:0",
        offset=0,
        decided_at_ms=ms(at),
        candidate_subscribers=("carrier-north",),
    )


def agreement(
    agreement_id: str,
    subscriber: str,
    *,
    publishers: tuple[str, ...] = ("shop-a",),
    event_types: tuple[str, ...] = (SSC,),
    valid_from: datetime = T0 - timedelta(days=30),
    valid_until: datetime | None = None,
) -> Agreement:
    return Agreement.model_validate(
        {
            "agreement_id": agreement_id,
            "version": 1,
            "publishers": publishers,
            "subscriber": subscriber,
            "event_types": event_types,
            "purpose": "parcel-delivery",
            "valid_from": valid_from,
            "valid_until": valid_until,
            "fields": {"status": "deliver"},
        }
    )


def rows_by(report: dict[str, Any], section: str, *keys: str) -> dict[Any, dict[str, Any]]:
    def key_of(row: dict[str, Any]) -> Any:
        return row[keys[0]] if len(keys) == 1 else tuple(row[key] for key in keys)

    return {key_of(row): row for row in report[section]}


# -- reciprocity ---------------------------------------------------------------------------


def test_reciprocity_counts_events_once_as_contributed_and_deliveries_as_received() -> None:
    health = EcosystemHealth()
    for minute in range(6):
        ev = event("shop-a", T0 + timedelta(minutes=minute), location=f"a-{minute}")
        health.record_all([ev, decision(ev, "carrier-b"), decision(ev, "app-c")])
    for minute in range(2):
        ev = event("carrier-b", T0 + timedelta(minutes=minute), location=f"b-{minute}")
        health.record_all([ev, decision(ev, "shop-a", agreement="agr-2")])

    report = health.report(T0 + timedelta(hours=1))

    partners = rows_by(report, "partners", "partner")
    assert (partners["shop-a"]["contributed"], partners["shop-a"]["received"]) == (6, 2)
    assert partners["shop-a"]["reciprocity_ratio"] == 6 / 8
    assert (partners["carrier-b"]["contributed"], partners["carrier-b"]["received"]) == (2, 6)
    assert partners["carrier-b"]["reciprocity_ratio"] == 2 / 8
    assert (partners["app-c"]["contributed"], partners["app-c"]["received"]) == (0, 6)
    assert partners["app-c"]["reciprocity_ratio"] == 0.0
    totals = report["totals"]
    assert totals["events_contributed"] == 8
    assert totals["deliveries"] == 14
    assert (totals["active_publishers"], totals["active_subscribers"]) == (2, 3)


def test_a_tally_counts_as_that_many_decisions() -> None:
    one_by_one, tallied = EcosystemHealth(), EcosystemHealth()
    events = [event("shop-a", T0, location=f"l-{n}") for n in range(3)]
    for ev in events:
        one_by_one.record_all(
            [
                ev,
                decision(ev, "carrier-b"),
                decision(ev, "app-c", outcome="withheld", reason="row-filter", agreement=None),
            ]
        )
    tallied.record_all(events)
    tallied.record_all(
        [
            DecisionTally(SSC, "carrier-b", "delivered", None, "agr-1", ms(T0), 3),
            DecisionTally(SSC, "app-c", "withheld", "row-filter", None, ms(T0), 3),
        ]
    )

    later = T0 + timedelta(minutes=5)
    assert tallied.report(later) == one_by_one.report(later)


def test_a_registered_partner_without_activity_is_reported_without_a_ratio() -> None:
    health = EcosystemHealth()
    health.set_partners(
        [Partner(partner_id="city-service", name="Gemeente", roles=frozenset({Role.SUBSCRIBER}))]
    )

    row = rows_by(health.report(T0), "partners", "partner")["city-service"]

    assert row["name"] == "Gemeente"
    assert (row["contributed"], row["received"], row["reciprocity_ratio"]) == (0, 0, None)


def test_counts_leave_the_window_after_it_has_passed() -> None:
    health = EcosystemHealth(window=timedelta(hours=24), bucket=timedelta(minutes=1))
    early = event("shop-a", T0)
    late = event("shop-a", T0 + timedelta(hours=12))
    health.record_all([early, decision(early, "carrier-b"), late, decision(late, "carrier-b")])

    def contributed(at: datetime) -> int:
        rows = rows_by(health.report(at), "partners", "partner")
        return int(rows["shop-a"]["contributed"]) if "shop-a" in rows else 0

    assert contributed(T0 + timedelta(hours=23)) == 2
    assert contributed(T0 + timedelta(hours=25)) == 1
    report = health.report(T0 + timedelta(hours=37))
    assert "shop-a" not in rows_by(report, "partners", "partner")
    assert report["totals"]["active_publishers"] == 0


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=6 * 3_600_000), max_size=60),
    later=st.integers(min_value=0, max_value=3 * 3_600_000),
)
def test_windowed_counts_never_undercount_and_overcount_by_at_most_one_bucket(
    offsets: list[int], later: int
) -> None:
    now_offset = max(offsets, default=0) + later  # the clock is never behind the decisions
    window, bucket = timedelta(hours=2), timedelta(minutes=5)
    health = EcosystemHealth(window=window, bucket=bucket)
    start = ms(T0)
    for offset in sorted(offsets):
        health.record_event(
            AcceptedEvent(f"e{offset}", SSC, "shop-a", "l", start + offset, start + offset)
        )
    now_ms = start + now_offset
    rows = rows_by(health.report(T0 + timedelta(milliseconds=now_offset)), "partners", "partner")
    counted = int(rows["shop-a"]["contributed"]) if "shop-a" in rows else 0

    window_ms, bucket_ms = ms(T0 + window) - start, ms(T0 + bucket) - start
    exact = sum(1 for o in offsets if now_ms - window_ms <= start + o)
    widest = sum(1 for o in offsets if now_ms - window_ms - bucket_ms < start + o)
    assert exact <= counted <= widest


# -- freshness and coverage ----------------------------------------------------------------


def test_a_publisher_that_goes_silent_loses_coverage_and_breaches_once_per_silence() -> None:
    health = EcosystemHealth()  # LocationAvailability SLA: 15 minutes
    lockers = [f"locker-{n}" for n in range(4)]
    for minute in range(0, 61, 5):
        at = T0 + timedelta(minutes=minute)
        for locker in lockers:
            health.record_event(event("shop-x", at, location=locker, event_type=LA))
            health.record_event(event("shop-y", at, location=locker, event_type=LA))
    # shop-y keeps reporting; shop-x falls silent after minute 60.
    for minute in range(65, 181, 5):
        for locker in lockers:
            at = T0 + timedelta(minutes=minute)
            health.record_event(event("shop-y", at, location=locker, event_type=LA))

    def stream(at: datetime, publisher: str) -> tuple[dict[str, Any], dict[str, Any]]:
        report = health.report(at)
        key = (publisher, LA)
        return (
            rows_by(report, "freshness", "publisher", "event_type")[key],
            rows_by(report, "coverage", "publisher", "event_type")[key],
        )

    fresh, cover = stream(T0 + timedelta(minutes=70), "shop-x")
    assert (fresh["stale"], fresh["breaches"], cover["coverage_ratio"]) == (False, 0, 1.0)
    assert fresh["age_seconds"] == 600

    fresh, cover = stream(T0 + timedelta(minutes=80), "shop-x")
    assert (fresh["stale"], fresh["breaches"]) == (True, 1)
    assert (cover["fresh_locations"], cover["known_locations"], cover["coverage_ratio"]) == (
        0,
        4,
        0.0,
    )
    fresh, _ = stream(T0 + timedelta(minutes=120), "shop-x")
    assert (fresh["stale"], fresh["breaches"]) == (True, 1), "a silence is one breach"

    # Two of the four lockers come back, then the publisher falls silent again.
    back = T0 + timedelta(minutes=130)
    for locker in lockers[:2]:
        health.record_event(event("shop-x", back, location=locker, event_type=LA))
    fresh, cover = stream(T0 + timedelta(minutes=135), "shop-x")
    assert (fresh["stale"], fresh["breaches"], cover["coverage_ratio"]) == (False, 1, 0.5)
    fresh, _ = stream(T0 + timedelta(minutes=150), "shop-x")
    assert (fresh["stale"], fresh["breaches"]) == (True, 2)

    fresh, cover = stream(T0 + timedelta(minutes=180), "shop-y")
    assert (fresh["stale"], fresh["breaches"], cover["coverage_ratio"]) == (False, 0, 1.0)
    report = health.report(T0 + timedelta(minutes=180))
    assert report["totals"]["stale_streams"] == 1
    assert report["totals"]["freshness_breaches"] == 2


def test_freshness_sla_is_per_event_type_and_configurable() -> None:
    health = EcosystemHealth(freshness_sla={SSC: timedelta(hours=1)})
    health.record_event(event("shop-a", T0, event_type=SSC))
    health.record_event(event("shop-a", T0, event_type=LA))
    health.record_event(event("shop-a", T0, event_type="ParcelPickup"))

    report = health.report(T0 + timedelta(minutes=30))

    streams = rows_by(report, "freshness", "event_type")
    assert streams[SSC]["sla_seconds"] == 3600
    assert streams[LA]["sla_seconds"] == 900
    assert streams["ParcelPickup"]["sla_seconds"] == 86_400
    assert [streams[t]["stale"] for t in (SSC, LA, "ParcelPickup")] == [False, True, False]


def test_breaches_are_not_counted_while_history_is_replayed() -> None:
    health = EcosystemHealth()
    health.record_event(event("shop-a", T0, event_type=LA))
    replaying = health.report(T0 + timedelta(hours=1), count_breaches=False)
    row = rows_by(replaying, "freshness", "publisher")["shop-a"]
    assert (row["stale"], row["breaches"]) == (True, 0)
    # The newer events arrive before the history is caught up: no breach ever.
    health.record_event(event("shop-a", T0 + timedelta(minutes=55), event_type=LA))
    caught_up = health.report(T0 + timedelta(hours=1))
    assert rows_by(caught_up, "freshness", "publisher")["shop-a"]["breaches"] == 0


def test_reported_at_is_capped_by_the_time_the_platform_saw_the_event() -> None:
    health = EcosystemHealth()
    # A clock running a day ahead cannot keep a silent publisher looking fresh...
    health.record_event(event("ahead", T0, event_type=LA, published=T0 + timedelta(days=1)))
    # ...and a backfill of old events does not look fresh either.
    health.record_event(event("backfill", T0, event_type=LA, published=T0 - timedelta(hours=3)))

    streams = rows_by(health.report(T0 + timedelta(minutes=20)), "freshness", "publisher")

    assert streams["ahead"]["stale"] is True
    assert streams["ahead"]["age_seconds"] == 1200
    assert streams["backfill"]["age_seconds"] == 3 * 3600 + 1200


def test_known_locations_are_bounded_and_the_least_recently_updated_are_forgotten() -> None:
    health = EcosystemHealth(max_locations_per_stream=3)
    for minute in range(5):
        at = T0 + timedelta(minutes=minute)
        health.record_event(event("shop-a", at, location=f"loc-{minute}", event_type=LA))

    cover = rows_by(health.report(T0 + timedelta(minutes=18)), "coverage", "publisher")["shop-a"]

    # loc-2, loc-3, loc-4 remain; at +18 min only loc-2 (minute 2) is older than 15 min.
    assert (cover["known_locations"], cover["forgotten_locations"]) == (3, 2)
    assert cover["fresh_locations"] == 2


# -- agreements ----------------------------------------------------------------------------


def test_agreements_in_force_that_delivered_nothing_in_a_day_are_idle() -> None:
    health = EcosystemHealth()
    health.set_agreements(
        [
            agreement("agr-busy", "carrier-b"),
            agreement("agr-quiet", "app-c"),
            agreement("agr-expired", "app-c", valid_until=T0 - timedelta(days=1)),
            agreement("agr-future", "app-c", valid_from=T0 + timedelta(days=7)),
        ]
    )
    ev = event("shop-a", T0)
    health.record_all([ev, decision(ev, "carrier-b", agreement="agr-busy")])
    withheld = event("shop-a", T0)
    health.record_all(
        [
            withheld,
            decision(
                withheld, "app-c", agreement="agr-quiet", outcome="withheld", reason="row-filter"
            ),
        ]
    )

    report = health.report(T0 + timedelta(hours=1))
    agreements = rows_by(report, "agreements", "agreement_id")
    assert sorted(agreements) == ["agr-busy", "agr-quiet"]
    assert agreements["agr-busy"]["idle"] is False
    assert agreements["agr-busy"]["deliveries"] == 1
    assert agreements["agr-busy"]["last_delivered_at"] == T0.isoformat()
    assert agreements["agr-quiet"]["idle"] is True
    assert agreements["agr-quiet"]["last_delivered_at"] is None
    assert report["totals"]["agreements_not_in_force"] == 2
    assert report["totals"]["idle_agreements"] == 1

    later = rows_by(health.report(T0 + timedelta(hours=25)), "agreements", "agreement_id")
    assert later["agr-busy"]["idle"] is True
    assert later["agr-busy"]["last_delivered_at"] == T0.isoformat()


# -- reasons, report shape, export ---------------------------------------------------------


def test_withheld_and_quarantined_are_summarised_by_reason_and_partner() -> None:
    health = EcosystemHealth()
    for reason in ("row-filter", "row-filter", "no-agreement"):
        ev = event("shop-a", T0)
        health.record_all([ev, decision(ev, "app-c", outcome="withheld", reason=reason)])
    health.record_all([refusal("shop-a", T0), refusal(None, T0, "undecodable")])

    report = health.report(T0 + timedelta(minutes=1))

    assert report["withheld"] == [
        {"reason": "no-agreement", "events": 1},
        {"reason": "row-filter", "events": 2},
    ]
    assert report["quarantined"] == [
        {"reason": "schema-invalid", "events": 1},
        {"reason": "undecodable", "events": 1},
    ]
    partners = rows_by(report, "partners", "partner")
    assert partners["app-c"]["withheld"] == 3
    assert partners["shop-a"]["quarantined"] == 1
    assert partners["shop-a"]["contributed"] == 3
    assert (report["totals"]["withheld"], report["totals"]["quarantined"]) == (3, 2)


def test_the_report_is_json_and_has_every_section() -> None:
    health = EcosystemHealth()
    health.set_agreements([agreement("agr-1", "carrier-b")])
    ev = event("shop-a", T0)
    health.record_all([ev, decision(ev, "carrier-b")])

    report = health.report(T0 + timedelta(minutes=1))

    assert json.loads(json.dumps(report)) == report
    assert {"totals", "partners", "coverage", "freshness", "agreements"} <= set(report)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number of buckets"):
        EcosystemHealth(window=timedelta(minutes=90), bucket=timedelta(hours=1))
    with pytest.raises(ValueError, match="positive"):
        EcosystemHealth(freshness_sla={LA: timedelta(0)})
    with pytest.raises(ValueError, match="at least 1"):
        EcosystemHealth(max_locations_per_stream=0)


def test_export_sets_gauges_removes_departed_series_and_counts_breaches_once() -> None:
    registry = CollectorRegistry()
    metrics = HealthMetrics(registry)
    health = EcosystemHealth()
    health.set_agreements(
        [
            agreement("agr-1", "carrier-b"),
            agreement("agr-2", "app-c", valid_until=T0 + timedelta(hours=2)),
        ]
    )
    for minute in (0, 1, 2):
        ev = event("shop-a", T0 + timedelta(minutes=minute), event_type=LA)
        health.record_all([ev, decision(ev, "carrier-b")])

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    health.export(metrics, T0 + timedelta(minutes=10))
    assert value("ecoshare_partner_events_contributed", partner="shop-a") == 3
    assert value("ecoshare_partner_events_received", partner="carrier-b") == 3
    assert value("ecoshare_partner_reciprocity_ratio", partner="shop-a") == 1.0
    assert value("ecoshare_partner_reciprocity_ratio", partner="carrier-b") == 0.0
    assert value("ecoshare_publisher_coverage_ratio", publisher="shop-a", event_type=LA) == 1.0
    assert value("ecoshare_agreement_idle", agreement="agr-1") == 0
    assert value("ecoshare_agreement_idle", agreement="agr-2") == 1
    assert value("ecoshare_active_publishers") == 1
    assert value("ecoshare_active_subscribers") == 1
    breaches = {"event_type": LA, "publisher": "shop-a"}
    assert value("ecoshare_freshness_sla_breaches_total", **breaches) == 0

    health.export(metrics, T0 + timedelta(minutes=30))
    health.export(metrics, T0 + timedelta(minutes=40))
    assert value("ecoshare_freshness_sla_breaches_total", **breaches) == 1
    assert value("ecoshare_publisher_coverage_ratio", publisher="shop-a", event_type=LA) == 0.0

    health.export(metrics, T0 + timedelta(hours=26))
    assert value("ecoshare_partner_events_contributed", partner="shop-a") is None
    assert value("ecoshare_partner_reciprocity_ratio", partner="carrier-b") is None
    assert value("ecoshare_agreement_idle", agreement="agr-2") is None, "expired: series gone"
    assert value("ecoshare_agreement_idle", agreement="agr-1") == 1
    assert value("ecoshare_freshness_sla_breaches_total", **breaches) == 1
    assert value("ecoshare_active_publishers") == 0


def test_each_metrics_object_gets_every_breach_once() -> None:
    health = EcosystemHealth()
    health.record_event(event("shop-a", T0, event_type=LA))
    first, second = CollectorRegistry(), CollectorRegistry()
    first_metrics = HealthMetrics(first)
    health.export(first_metrics, T0 + timedelta(hours=1))
    health.export(first_metrics, T0 + timedelta(hours=2))
    health.export(HealthMetrics(second), T0 + timedelta(hours=2))

    labels = {"event_type": LA, "publisher": "shop-a"}
    assert first.get_sample_value("ecoshare_freshness_sla_breaches_total", labels) == 1
    assert second.get_sample_value("ecoshare_freshness_sla_breaches_total", labels) == 1
