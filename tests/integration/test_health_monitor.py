"""The health monitor against the real embedded broker.

Audit blocks (in the format of :mod:`ecoshare.audit`) and control records are written to
fresh uuid-prefixed topics; the monitor replays them from the beginning, then follows
new ones live. Its report and the Prometheus exposition of its registry are checked.
Polling loops are bounded only to fail a stuck test; no assertion is on time taken.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.config.topics import TopicNames
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner, Role
from ecoshare.governance.control_plane import (
    ControlKind,
    control_writer,
    ensure_control_topics,
)
from ecoshare.health import HealthMonitor

SSC = "StoreStatusChanged"
LA = "LocationAvailability"
AUDIT_PARTITIONS = 2
WITHIN_SECONDS = 30.0  # bounds the polling loops; not a performance target
T = TypeVar("T")


def _agreement(
    agreement_id: str,
    publisher: str,
    subscriber: str,
    event_type: str,
    *,
    valid_until: datetime | None = None,
) -> dict[str, Any]:
    return Agreement.model_validate(
        {
            "agreement_id": agreement_id,
            "version": 1,
            "publishers": [publisher],
            "subscriber": subscriber,
            "event_types": [event_type],
            "purpose": "parcel-delivery",
            "valid_from": datetime(2020, 3, 23, tzinfo=UTC),
            "valid_until": valid_until,
            "fields": {"status": "deliver"},
        }
    ).model_dump(mode="json")


def _block(
    event_type: str,
    partition: int,
    at_ms: int,
    templates: list[dict[str, Any]],
    events: list[list[Any]],
    quarantined: list[list[Any]] | None = None,
) -> bytes:
    return json.dumps(
        {
            "source": f"ingress.{event_type}:{partition}",
            "event_type": event_type,
            "state_version": "test",
            "at_ms": at_ms,
            "candidates": sorted({template["subscriber"] for template in templates}),
            "templates": templates,
            "events": events,
            "quarantined": quarantined or [],
        }
    ).encode()


def _delivered(subscriber: str, agreement_id: str) -> dict[str, Any]:
    return {
        "subscriber": subscriber,
        "outcome": "delivered",
        "reason": None,
        "agreement_id": agreement_id,
        "agreement_version": 1,
        "fields_delivered": ["status"],
    }


def _withheld(subscriber: str, reason: str, agreement_id: str | None) -> dict[str, Any]:
    return {
        "subscriber": subscriber,
        "outcome": "withheld",
        "reason": reason,
        "agreement_id": agreement_id,
        "agreement_version": 1 if agreement_id else None,
    }


def _write_audit(bootstrap_servers: str, topic: str, values: list[tuple[int, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all", "log_level": 3})
    for partition, value in values:
        producer.produce(topic, value=value, partition=partition)
    assert producer.flush(30) == 0


def _samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _eventually(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + WITHIN_SECONDS
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WITHIN_SECONDS:.0f}s: {what}")
        time.sleep(0.05)


def _by(rows: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    return {
        (row[keys[0]] if len(keys) == 1 else tuple(row[key] for key in keys)): row for row in rows
    }


@pytest.fixture
def seeded(bootstrap_servers: str, topic_names: TopicNames) -> int:
    """Control records and a first set of audit blocks; returns the blocks' decision time."""
    ensure_topics(bootstrap_servers, [TopicSpec(topic_names.audit, AUDIT_PARTITIONS)])
    ensure_control_topics(bootstrap_servers, topic_names)
    now = datetime.now(UTC)
    with control_writer(bootstrap_servers, topic_names) as writer:
        for partner_id, roles in (
            ("shop-a", {Role.PUBLISHER, Role.SUBSCRIBER}),
            ("shop-b", {Role.PUBLISHER}),
            ("carrier-north", {Role.PUBLISHER, Role.SUBSCRIBER}),
            ("city-app", {Role.SUBSCRIBER}),
        ):
            partner = Partner(
                partner_id=partner_id, name=partner_id.title(), roles=frozenset(roles)
            )
            writer.put(ControlKind.PARTNER, partner_id, partner.model_dump(mode="json"))
        for agreement_id, value in (
            ("agr-carrier", _agreement("agr-carrier", "shop-a", "carrier-north", SSC)),
            ("agr-city", _agreement("agr-city", "shop-a", "city-app", SSC)),
            ("agr-back", _agreement("agr-back", "carrier-north", "shop-a", LA)),
            (
                "agr-old",
                _agreement(
                    "agr-old", "shop-a", "city-app", LA, valid_until=now - timedelta(days=1)
                ),
            ),
        ):
            writer.put(ControlKind.AGREEMENT, agreement_id, value)
        writer.put(ControlKind.AGREEMENT, "agr-broken", {"agreement_id": "agr-broken"})

    at_ms = int(now.timestamp() * 1000)
    two_days_ago_ms = at_ms - 2 * 86_400_000
    shop_a_events = [
        [offset, f"ev-a{offset}", "shop-a", f"a-{offset}", at_ms - 1000, [0], [1]]
        for offset in range(3)
    ]
    _write_audit(
        bootstrap_servers,
        topic_names.audit,
        [
            (
                0,
                _block(
                    SSC,
                    0,
                    at_ms,
                    [
                        _delivered("carrier-north", "agr-carrier"),
                        _withheld("city-app", "row-filter", "agr-city"),
                    ],
                    shop_a_events,
                    [[3, None, "schema-invalid", "not Avro", "shop-a"]],
                ),
            ),
            (1, b""),  # a position marker
            # shop-b's only event is two days old, and nobody subscribes to it.
            (1, _block(SSC, 1, at_ms, [], [[0, "ev-b0", "shop-b", "b-0", two_days_ago_ms]])),
            (
                1,
                _block(
                    LA,
                    1,
                    at_ms,
                    [_delivered("shop-a", "agr-back")],
                    [[0, "ev-c0", "carrier-north", "locker-1", at_ms - 2000, [0]]],
                ),
            ),
            (0, b"this is not an audit block"),
        ],
    )
    return at_ms


@pytest.fixture
def monitor(
    bootstrap_servers: str, topic_names: TopicNames, seeded: int
) -> Iterator[tuple[HealthMonitor, CollectorRegistry]]:
    registry = CollectorRegistry()
    with HealthMonitor(bootstrap_servers, topic_names, registry, refresh_seconds=0.1) as running:
        yield running, registry


def test_the_monitor_replays_the_audit_trail_and_exports_the_health_gauges(
    monitor: tuple[HealthMonitor, CollectorRegistry],
) -> None:
    health, registry = monitor
    assert health.wait_until_caught_up(WITHIN_SECONDS), health.report()["status"]

    report = health.report()

    status = report["status"]
    assert status["caught_up"] is True
    assert (status["audit_messages"], status["undecodable_audit_messages"]) == (5, 1)
    assert status["invalid_control_records"] == 1
    partners = _by(report["partners"], "partner")
    assert sorted(partners) == ["carrier-north", "city-app", "shop-a", "shop-b"]
    assert (partners["shop-a"]["contributed"], partners["shop-a"]["received"]) == (3, 1)
    assert partners["shop-a"]["reciprocity_ratio"] == 0.75
    assert partners["shop-a"]["quarantined"] == 1
    assert (partners["carrier-north"]["contributed"], partners["carrier-north"]["received"]) == (
        1,
        3,
    )
    assert partners["carrier-north"]["reciprocity_ratio"] == 0.25
    assert (partners["shop-b"]["contributed"], partners["shop-b"]["reciprocity_ratio"]) == (1, 1.0)
    assert partners["city-app"]["reciprocity_ratio"] is None
    assert partners["city-app"]["withheld"] == 3
    assert report["withheld"] == [{"reason": "row-filter", "events": 3}]
    assert report["quarantined"] == [{"reason": "schema-invalid", "events": 1}]

    coverage = _by(report["coverage"], "publisher", "event_type")
    assert coverage[("shop-a", SSC)]["coverage_ratio"] == 1.0
    assert coverage[("shop-a", SSC)]["known_locations"] == 3
    assert coverage[("shop-b", SSC)]["coverage_ratio"] == 0.0
    assert coverage[("carrier-north", LA)]["coverage_ratio"] == 1.0
    freshness = _by(report["freshness"], "publisher", "event_type")
    assert freshness[("shop-b", SSC)]["stale"] is True
    assert freshness[("shop-b", SSC)]["breaches"] == 1
    assert freshness[("shop-a", SSC)]["stale"] is False

    agreements = _by(report["agreements"], "agreement_id")
    assert sorted(agreements) == ["agr-back", "agr-carrier", "agr-city"]
    assert {key: row["idle"] for key, row in agreements.items()} == {
        "agr-back": False,
        "agr-carrier": False,
        "agr-city": True,
    }
    assert agreements["agr-carrier"]["deliveries"] == 3
    totals = report["totals"]
    assert (totals["active_publishers"], totals["active_subscribers"]) == (3, 2)
    assert totals["agreements_not_in_force"] == 1

    def exported() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        samples = _samples(registry)
        return samples if _value(samples, "ecoshare_active_publishers") == 3 else None

    samples = _eventually(exported, "the gauges are exported")
    assert _value(samples, "ecoshare_active_subscribers") == 2
    assert _value(samples, "ecoshare_partner_events_contributed", partner="shop-a") == 3
    assert _value(samples, "ecoshare_partner_events_received", partner="carrier-north") == 3
    assert _value(samples, "ecoshare_partner_reciprocity_ratio", partner="shop-a") == 0.75
    assert _value(samples, "ecoshare_partner_reciprocity_ratio", partner="city-app") is None
    assert (
        _value(samples, "ecoshare_publisher_coverage_ratio", publisher="shop-b", event_type=SSC)
        == 0.0
    )
    assert _value(samples, "ecoshare_agreement_idle", agreement="agr-city") == 1
    assert _value(samples, "ecoshare_agreement_idle", agreement="agr-carrier") == 0
    assert _value(samples, "ecoshare_agreement_idle", agreement="agr-old") is None
    assert (
        _value(samples, "ecoshare_freshness_sla_breaches_total", event_type=SSC, publisher="shop-b")
        == 1
    )
    assert (
        _value(samples, "ecoshare_freshness_sla_breaches_total", event_type=SSC, publisher="shop-a")
        == 0
    )


def test_the_monitor_follows_new_decisions_and_agreement_changes_live(
    monitor: tuple[HealthMonitor, CollectorRegistry],
    bootstrap_servers: str,
    topic_names: TopicNames,
) -> None:
    health, registry = monitor
    assert health.wait_until_caught_up(WITHIN_SECONDS), health.report()["status"]
    at_ms = int(time.time() * 1000)

    _write_audit(
        bootstrap_servers,
        topic_names.audit,
        [
            (
                0,
                _block(
                    SSC,
                    0,
                    at_ms,
                    [_delivered("city-app", "agr-city")],
                    [[10, "ev-a10", "shop-a", "a-0", at_ms, [0]]],
                ),
            )
        ],
    )
    with control_writer(bootstrap_servers, topic_names) as writer:
        writer.delete(ControlKind.AGREEMENT, "agr-back")

    def updated() -> dict[str, Any] | None:
        report = health.report()
        agreements = _by(report["agreements"], "agreement_id")
        if "agr-back" in agreements or agreements["agr-city"]["idle"]:
            return None
        return report

    report = _eventually(updated, "the new delivery and the deleted agreement are reflected")
    partners = _by(report["partners"], "partner")
    assert (partners["shop-a"]["contributed"], partners["city-app"]["received"]) == (4, 1)
    assert partners["city-app"]["reciprocity_ratio"] == 0.0
    assert (
        _by(report["coverage"], "publisher", "event_type")[("shop-a", SSC)]["known_locations"] == 3
    )

    def exported() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        # Both changes may reach the gauges in different exports: wait for the export
        # after the later one.
        samples = _samples(registry)
        idle = _value(samples, "ecoshare_agreement_idle", agreement="agr-city")
        deleted = _value(samples, "ecoshare_agreement_idle", agreement="agr-back") is None
        return samples if idle == 0 and deleted else None

    samples = _eventually(exported, "the gauges follow")
    assert _value(samples, "ecoshare_agreement_idle", agreement="agr-back") is None
    assert _value(samples, "ecoshare_partner_events_received", partner="city-app") == 1
    assert _value(samples, "ecoshare_partner_events_contributed", partner="shop-a") == 4


def test_the_monitor_waits_for_topics_that_do_not_exist_yet(
    bootstrap_servers: str, topic_names: TopicNames
) -> None:
    registry = CollectorRegistry()
    with HealthMonitor(bootstrap_servers, topic_names, registry, refresh_seconds=0.1) as health:
        report = health.report()
        assert report["status"]["following"] is False
        assert report["status"]["caught_up"] is False

        ensure_topics(bootstrap_servers, [TopicSpec(topic_names.audit, AUDIT_PARTITIONS)])
        ensure_control_topics(bootstrap_servers, topic_names)
        assert health.wait_until_caught_up(WITHIN_SECONDS), health.report()["status"]

        at_ms = int(time.time() * 1000)
        _write_audit(
            bootstrap_servers,
            topic_names.audit,
            [(1, _block(LA, 1, at_ms, [], [[0, "ev-1", "shop-z", "l-1", at_ms]]))],
        )

        def seen() -> dict[str, Any] | None:
            rows = _by(health.report()["partners"], "partner")
            return rows.get("shop-z")

        assert _eventually(seen, "the first event is counted")["contributed"] == 1
