"""The worker's metrics: series declared at 0, one count per fact, atomic scrapes,
latency from the ingest time, one consent-enforcement observation per withdrawal."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest

from ecoshare.adapters.metrics import ConsistentRegistry, GovernanceMetrics
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.engine import UNKNOWN_PUBLISHER, QuarantineReason
from ecoshare.governance.observer import (
    WorkerObserver,
    declared_series,
    designated_partition,
)
from tests.unit.governed import (
    NAMES,
    IngressRecord,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_engine_admission import NOW, NOW_MS, TYPE, _event, _state

TYPES = ("LocationAvailability", "StoreStatusChanged")
PARTITIONS = 4


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def observer_on(
    registry: CollectorRegistry, clock: float = NOW.timestamp()
) -> tuple[WorkerObserver, GovernanceMetrics]:
    metrics = GovernanceMetrics(registry)
    observer = WorkerObserver(
        metrics,
        names=NAMES,
        event_types=TYPES,
        ingress_partitions=PARTITIONS,
        clock=lambda: clock,
    )
    return observer, metrics


def test_every_knowable_series_exists_at_zero_before_the_first_event() -> None:
    registry = CollectorRegistry()
    observer, _ = observer_on(registry)

    observer.state_in_force(_state())

    for publisher in ("postnl", "shops", UNKNOWN_PUBLISHER):
        for event_type in TYPES:
            assert (
                sample(
                    registry,
                    "ecoshare_events_received_total",
                    publisher=publisher,
                    event_type=event_type,
                )
                == 0.0
            )
    assert (
        sample(registry, "ecoshare_events_admitted_total", publisher="postnl", event_type=TYPE)
        == 0.0
    )
    # Nobody is authenticated as "unknown": it is received, never admitted.
    assert (
        sample(
            registry, "ecoshare_events_admitted_total", publisher=UNKNOWN_PUBLISHER, event_type=TYPE
        )
        is None
    )
    for reason in QuarantineReason:
        assert (
            sample(
                registry, "ecoshare_events_quarantined_total", event_type=TYPE, reason=reason.value
            )
            == 0.0
        )
    labels = {"subscriber": "carrier", "event_type": TYPE}
    for name in (
        "ecoshare_subscriber_events_received_total",
        "ecoshare_events_delivered_total",
        "ecoshare_subscriber_events_quarantined_total",
    ):
        assert sample(registry, name, **labels) == 0.0
    assert sample(registry, "ecoshare_events_withheld_total", reason="row_filter", **labels) == 0.0
    assert sample(registry, "ecoshare_delivery_latency_seconds_count", subscriber="carrier") == 0.0
    # carrier holds no agreement for LocationAvailability: no candidate, no series.
    assert (
        sample(
            registry,
            "ecoshare_events_delivered_total",
            subscriber="carrier",
            event_type="LocationAvailability",
        )
        is None
    )
    # A publisher's freshness is never declared at 0 (it would read as ancient data).
    assert "ecoshare_last_event_timestamp_seconds{" not in generate_latest(registry).decode()


def test_series_follow_partners_and_agreements_as_they_come_and_go() -> None:
    registry = CollectorRegistry()
    observer, metrics = observer_on(registry)
    state = _state()
    observer.state_in_force(state)
    metrics.last_event_timestamp_seconds.labels("shops", TYPE).set(NOW.timestamp())

    partners = [p for p in state.partners.values() if p.partner_id != "shops"]
    partners.append(Partner(partner_id="city", name="City", roles=frozenset({Role.PUBLISHER})))
    observer.state_in_force(GovernanceState(partners, [], list(state.consents)))

    assert (
        sample(registry, "ecoshare_events_received_total", publisher="city", event_type=TYPE) == 0.0
    )
    text = generate_latest(registry).decode()
    assert 'publisher="shops"' not in text  # counters and freshness both gone
    assert 'subscriber="carrier"' not in text  # its only agreement was removed


def test_a_batch_is_counted_once_per_fact_and_both_laws_hold() -> None:
    registry = CollectorRegistry()
    observer, _ = observer_on(registry)
    state = _state()
    observer.state_in_force(state)
    engine = make_engine(RecordingRegistry())
    good = encode_event(TYPE, _event(1))
    unsigned = IngressRecord(NAMES.ingress(TYPE), good, [], offset_number=1)
    duplicate = signed_message(TYPE, good, "postnl", offset=2)
    messages = [signed_message(TYPE, good, "postnl", offset=0), unsigned, duplicate]

    result = engine.govern(messages, state, NOW, NOW_MS)
    observer.batch_completed(result.counts, len(messages), 0.01, acknowledged_at=NOW.timestamp())

    def total(name: str, **labels: str) -> float:
        return sample(registry, name, **labels) or 0.0

    assert total("ecoshare_events_received_total", publisher="postnl", event_type=TYPE) == 2
    assert total("ecoshare_events_received_total", publisher="unknown", event_type=TYPE) == 1
    assert total("ecoshare_events_admitted_total", publisher="postnl", event_type=TYPE) == 1
    quarantined = {
        reason.value: total(
            "ecoshare_events_quarantined_total", event_type=TYPE, reason=reason.value
        )
        for reason in QuarantineReason
    }
    assert quarantined["unauthenticated_publisher"] == 1
    assert quarantined["duplicate_event_id"] == 1
    assert sum(quarantined.values()) == 3 - 1  # received = admitted + quarantined
    labels = {"subscriber": "carrier", "event_type": TYPE}
    # The subscriber's received count agrees with the event type's received count.
    assert total("ecoshare_subscriber_events_received_total", **labels) == 3
    assert total("ecoshare_events_delivered_total", **labels) == 1
    assert total("ecoshare_subscriber_events_quarantined_total", **labels) == 2


def test_delivery_latency_runs_from_the_ingest_time_not_the_publishers_clock() -> None:
    registry = CollectorRegistry()
    observer, _ = observer_on(registry)
    state = _state()
    observer.state_in_force(state)
    engine = make_engine(RecordingRegistry())
    # Published (on the publisher's clock) a day before it reached the platform.
    back_dated = _event(1, published_at=NOW_MS - 86_400_000)
    message = signed_message(TYPE, encode_event(TYPE, back_dated), "postnl")
    message.ingested_ms = NOW_MS - 30  # the broker's timestamp

    result = engine.govern([message], state, NOW, NOW_MS)
    observer.batch_completed(result.counts, 1, 0.01, acknowledged_at=NOW.timestamp())

    assert sample(registry, "ecoshare_delivery_latency_seconds_count", subscriber="carrier") == 1
    latency = sample(registry, "ecoshare_delivery_latency_seconds_sum", subscriber="carrier")
    assert latency is not None and abs(latency - 0.03) < 1e-6
    # Freshness keeps the publisher's own clock.
    freshness = sample(
        registry, "ecoshare_last_event_timestamp_seconds", publisher="postnl", event_type=TYPE
    )
    assert freshness == (NOW_MS - 86_400_000) / 1000


def _withdrawn(state: GovernanceState, consent_id: str, at: datetime) -> GovernanceState:
    consents = [
        consent.model_copy(update={"withdrawn_at": at})
        if consent.consent_id == consent_id
        else consent
        for consent in state.consents
    ]
    return GovernanceState(list(state.partners.values()), list(state.agreements.values()), consents)


def test_a_withdrawal_is_observed_once_by_the_owner_of_its_designated_partition() -> None:
    state = _state()
    withdrawn = _withdrawn(state, "c-1", NOW - timedelta(milliseconds=250))
    designated = (NAMES.ingress(min(TYPES)), designated_partition("c-1", PARTITIONS))
    workers: list[tuple[WorkerObserver, CollectorRegistry]] = []
    for owned in ({designated}, {(designated[0], (designated[1] + 1) % PARTITIONS)}):
        registry = CollectorRegistry()
        observer, _ = observer_on(registry)
        for topic, partition in owned:
            observer.partition_assigned(topic, partition)
        workers.append((observer, registry))

    for observer, _ in workers:
        observer.state_in_force(state)
        observer.state_in_force(withdrawn)
        observer.state_in_force(withdrawn)  # the same state again changes nothing
        # A later state still holding the withdrawal does not observe it again.
        observer.state_in_force(_withdrawn(withdrawn, "c-1", NOW - timedelta(milliseconds=250)))

    counts = [
        sample(registry, "ecoshare_consent_enforcement_delay_seconds_count")
        for _, registry in workers
    ]
    assert counts == [1.0, 0.0]
    assert workers[0][0].consent_enforcement_delays == [0.25]


def test_withdrawals_older_than_the_worker_are_not_observed() -> None:
    registry = CollectorRegistry()
    observer, _ = observer_on(registry)
    for partition in range(PARTITIONS):
        observer.partition_assigned(NAMES.ingress(min(TYPES)), partition)

    observer.state_in_force(_withdrawn(_state(), "c-1", NOW - timedelta(days=1)))

    assert sample(registry, "ecoshare_consent_enforcement_delay_seconds_count") == 0.0


def test_a_scrape_waits_for_an_update_in_progress() -> None:
    registry = ConsistentRegistry()
    metrics = GovernanceMetrics(registry)
    scraped: list[bytes] = []
    done = threading.Event()

    def scrape() -> None:
        scraped.append(generate_latest(registry))
        done.set()

    with metrics.update():
        metrics.events_received.labels("postnl", TYPE).inc(5)
        scraper = threading.Thread(target=scrape)
        scraper.start()
        blocked = not done.wait(0.2)
        metrics.events_admitted.labels("postnl", TYPE).inc(5)
    scraper.join(10)

    assert blocked
    text = scraped[0].decode()
    assert (
        'ecoshare_events_received_total{event_type="StoreStatusChanged",publisher="postnl"} 5.0'
        in text
    )
    assert (
        'ecoshare_events_admitted_total{event_type="StoreStatusChanged",publisher="postnl"} 5.0'
        in text
    )


def test_declared_series_come_from_the_control_plane_and_the_catalog() -> None:
    declared = declared_series(_state(), TYPES)

    # Every partner: one without the publisher role may still send (and be refused).
    assert declared.publishers == frozenset(_state().partners)
    assert {"postnl", "shops"} <= declared.publishers
    assert declared.subscribers_by_type == {"LocationAvailability": (), TYPE: ("carrier",)}
    assert "row_filter" in declared.withhold_reasons
    assert "duplicate_event_id" in declared.quarantine_reasons
