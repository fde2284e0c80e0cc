"""The metrics catalog follows Prometheus conventions and keeps label sets bounded."""

from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from ecoshare.adapters.metrics import (
    CONSENT_ENFORCEMENT_BUCKETS,
    DELIVERY_LATENCY_BUCKETS,
    EVENT_PROCESSING_BUCKETS,
    GovernanceMetrics,
    HealthMetrics,
    HttpMetrics,
    register_build_info,
    series_names,
    start_metrics_server,
    stop_metrics_server,
)
from ecoshare.config.topics import TopicNames
from ecoshare.governance.engine import BatchCounts
from ecoshare.governance.observer import WorkerObserver

# Labels whose values come from bounded sets: partners, event types, closed reason
# vocabularies, agreements, topics/partitions, HTTP route templates.
ALLOWED_LABELS = frozenset(
    {
        "publisher",
        "subscriber",
        "partner",
        "event_type",
        "reason",
        "controller",
        "agreement",
        "topic",
        "partition",
        "service",
        "method",
        "route",
        "status",
        "version",
    }
)
# Unbounded identifiers that must never become labels.
FORBIDDEN_LABELS = frozenset({"event_id", "location_id", "subject", "consent_id", "path"})
NAME_PATTERN = re.compile(r"^ecoshare_[a-z][a-z0-9_]*[a-z0-9]$")
TIME_WORDS = ("seconds", "latency", "duration", "delay", "timestamp", "time", "age")


def catalog_metrics(registry: CollectorRegistry) -> list[MetricWrapperBase]:
    """Construct the whole catalog on ``registry`` and return every metric object."""
    owners: list[object] = [
        GovernanceMetrics(registry),
        HealthMetrics(registry),
        HttpMetrics(registry, "api"),
    ]
    metrics = [
        value
        for owner in owners
        for value in vars(owner).values()
        if isinstance(value, MetricWrapperBase)
    ]
    metrics.append(register_build_info(registry, "api", "0.0.0"))
    return metrics


def exposed_name(metric: MetricWrapperBase) -> str:
    """The name as it appears in the exposition (counters gain ``_total``)."""
    family = next(iter(metric.describe()))
    return f"{family.name}_total" if isinstance(metric, Counter) else family.name


def label_names(metric: MetricWrapperBase) -> tuple[str, ...]:
    return tuple(metric._labelnames)


@pytest.fixture
def metrics() -> list[MetricWrapperBase]:
    return catalog_metrics(CollectorRegistry())


def test_catalog_is_not_empty_and_names_are_unique(metrics: list[MetricWrapperBase]) -> None:
    names = [exposed_name(m) for m in metrics]
    assert len(names) >= 25
    assert len(names) == len(set(names))


def test_every_name_has_the_prefix_and_snake_case(metrics: list[MetricWrapperBase]) -> None:
    for metric in metrics:
        assert NAME_PATTERN.match(exposed_name(metric)), exposed_name(metric)


def test_counters_end_in_total_and_nothing_else_does(metrics: list[MetricWrapperBase]) -> None:
    for metric in metrics:
        name = exposed_name(metric)
        if isinstance(metric, Counter):
            assert name.endswith("_total"), name
        else:
            assert "_total" not in name, name


def test_durations_and_timestamps_are_in_seconds(metrics: list[MetricWrapperBase]) -> None:
    for metric in metrics:
        name = exposed_name(metric)
        if isinstance(metric, Histogram):
            # Every histogram of the catalog measures a duration.
            assert name.endswith("_seconds"), name
        if any(word in name.split("_") for word in TIME_WORDS):
            assert name.endswith("_seconds"), name
        assert not re.search(r"_(ms|millis|milliseconds|us|minutes|hours)(_|$)", name), name


def test_gauges_do_not_look_like_counters(metrics: list[MetricWrapperBase]) -> None:
    for metric in metrics:
        if isinstance(metric, Gauge):
            assert not exposed_name(metric).endswith(("_total", "_count", "_sum", "_bucket"))


def test_labels_are_bounded(metrics: list[MetricWrapperBase]) -> None:
    for metric in metrics:
        labels = set(label_names(metric))
        assert labels <= ALLOWED_LABELS, (exposed_name(metric), labels - ALLOWED_LABELS)
        assert not labels & FORBIDDEN_LABELS
        assert not labels & {"le", "quantile"}


def test_requested_metric_names_are_present(metrics: list[MetricWrapperBase]) -> None:
    names = {exposed_name(m): set(label_names(m)) for m in metrics}
    expected = {
        "ecoshare_events_received_total": {"publisher", "event_type"},
        "ecoshare_events_admitted_total": {"publisher", "event_type"},
        "ecoshare_subscriber_events_received_total": {"subscriber", "event_type"},
        "ecoshare_events_delivered_total": {"subscriber", "event_type"},
        "ecoshare_events_withheld_total": {"subscriber", "event_type", "reason"},
        "ecoshare_events_quarantined_total": {"event_type", "reason"},
        "ecoshare_subscriber_events_quarantined_total": {"subscriber", "event_type"},
        "ecoshare_batch_processing_seconds": set(),
        "ecoshare_event_processing_seconds": set(),
        "ecoshare_delivery_latency_seconds": {"subscriber"},
        "ecoshare_consent_enforcement_delay_seconds": set(),
        "ecoshare_last_event_timestamp_seconds": {"publisher", "event_type"},
        "ecoshare_ingress_consumer_lag_messages": {"topic", "partition"},
        "ecoshare_ingress_partitions_owned": {"topic"},
        "ecoshare_governance_state_version": set(),
        "ecoshare_governance_state_updated_timestamp_seconds": set(),
        "ecoshare_active_agreements": set(),
        "ecoshare_consents_active": {"controller"},
        "ecoshare_partner_events_contributed": {"partner"},
        "ecoshare_partner_events_received": {"partner"},
        "ecoshare_partner_reciprocity_ratio": {"partner"},
        "ecoshare_publisher_coverage_ratio": {"publisher", "event_type"},
        "ecoshare_agreement_idle": {"agreement"},
        "ecoshare_freshness_sla_breaches_total": {"event_type", "publisher"},
        "ecoshare_active_publishers": set(),
        "ecoshare_active_subscribers": set(),
        "ecoshare_http_requests_total": {"service", "method", "route", "status"},
        "ecoshare_http_request_duration_seconds": {"service", "method", "route"},
        "ecoshare_build_info": {"service", "version"},
    }
    for name, labels in expected.items():
        assert name in names, name
        assert names[name] == labels, name


def test_histogram_buckets_cover_their_ranges() -> None:
    assert EVENT_PROCESSING_BUCKETS[0] <= 1e-6
    assert DELIVERY_LATENCY_BUCKETS[0] == pytest.approx(0.001)
    assert DELIVERY_LATENCY_BUCKETS[-1] == pytest.approx(60.0)
    assert 1.0 in CONSENT_ENFORCEMENT_BUCKETS  # the consent alert's threshold
    for buckets in (EVENT_PROCESSING_BUCKETS, DELIVERY_LATENCY_BUCKETS):
        assert list(buckets) == sorted(set(buckets))


def test_catalog_registers_on_separate_registries_without_clashing() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    catalog_metrics(first)
    catalog_metrics(second)
    assert series_names(first) == series_names(second)


def test_registering_twice_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    GovernanceMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        GovernanceMetrics(registry)


def test_nothing_lands_on_the_default_registry() -> None:
    from prometheus_client import REGISTRY

    before = {family.name for family in REGISTRY.collect()}
    catalog_metrics(CollectorRegistry())
    after = {family.name for family in REGISTRY.collect()}
    assert not {name for name in after - before if name.startswith("ecoshare_")}


def populated_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    governance = GovernanceMetrics(registry)
    health = HealthMetrics(registry)
    http = HttpMetrics(registry, "api")
    register_build_info(registry, "api", "0.1.0")
    # One batch as the engine counts it and the worker's observer applies it: one event
    # admitted (delivered to carrier-1, withheld from carrier-2), one quarantined.
    event_type = "StoreStatusChanged"
    WorkerObserver(
        governance, names=TopicNames(), event_types=(event_type,), ingress_partitions=1
    ).batch_completed(
        BatchCounts(
            admitted={("shop-1", event_type): 1},
            delivered={("carrier-1", event_type): 1},
            withheld={("carrier-2", event_type, "row_filter"): 1},
            quarantined={(event_type, "unauthenticated_publisher"): 1},
            quarantined_publishers={("unknown", event_type): 1},
            subscriber_received={("carrier-1", event_type): 2, ("carrier-2", event_type): 2},
            subscriber_quarantined={("carrier-1", event_type): 1, ("carrier-2", event_type): 1},
        ),
        2,
        0.02,
        1.7e9,
    )
    governance.delivery_latency_seconds.labels("carrier-1").observe(0.05)
    governance.consent_enforcement_delay_seconds.observe(0.2)
    governance.last_event_timestamp_seconds.labels("shop-1", "StoreStatusChanged").set(1.7e9)
    governance.set_consumer_lag("ingress.StoreStatusChanged", 0, 12)
    governance.governance_state_version.set(7)
    governance.governance_state_updated_timestamp_seconds.set(1.7e9)
    governance.active_agreements.set(3)
    governance.consents_active.labels("shop-1").set(2)
    health.partner_events_contributed.labels("shop-1").set(10)
    health.partner_events_received.labels("shop-1").set(0)
    health.partner_reciprocity_ratio.labels("shop-1").set(1.0)
    health.publisher_coverage_ratio.labels("shop-1", "StoreStatusChanged").set(0.9)
    health.agreement_idle.labels("agr-1").set(0)
    health.freshness_sla_breaches.labels("StoreStatusChanged", "shop-1").inc()
    health.active_publishers.set(1)
    health.active_subscribers.set(2)
    http.observe("GET", "/partners/{partner_id}", 200, 0.004)
    return registry


def test_exposition_parses_and_matches_the_catalog() -> None:
    registry = populated_registry()
    text = generate_latest(registry).decode()
    families = list(text_string_to_metric_families(text))
    sample_names = {sample.name for family in families for sample in family.samples}
    assert sample_names <= series_names(registry)
    for family in families:
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= ALLOWED_LABELS, sample


def test_forget_partition_drops_the_lag_series() -> None:
    registry = CollectorRegistry()
    governance = GovernanceMetrics(registry)
    governance.set_consumer_lag("ingress.StoreStatusChanged", 3, 5)
    governance.forget_partition("ingress.StoreStatusChanged", 3)
    governance.forget_partition("ingress.StoreStatusChanged", 3)  # idempotent
    assert b"ecoshare_ingress_consumer_lag_messages{" not in generate_latest(registry)


def test_owned_partitions_follow_assignment_and_revocation() -> None:
    registry = CollectorRegistry()
    observer = WorkerObserver(
        GovernanceMetrics(registry),
        names=TopicNames(),
        event_types=("StoreStatusChanged",),
        ingress_partitions=3,
    )
    topic = "ingress.StoreStatusChanged"
    for partition in (0, 1, 2):
        observer.partition_assigned(topic, partition)
    observer.partition_revoked(topic, 1)
    assert registry.get_sample_value(
        "ecoshare_ingress_partitions_owned", {"topic": topic}
    ) == pytest.approx(2)


def test_metrics_server_picks_a_free_port_and_serves_the_registry() -> None:
    registry = populated_registry()
    server, port = start_metrics_server(registry, "127.0.0.1", 0)
    try:
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert "ecoshare_events_delivered_total" in body
        assert 'ecoshare_build_info{service="api",version="0.1.0"} 1.0' in body
    finally:
        stop_metrics_server(server)
