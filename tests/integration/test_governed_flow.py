"""The governed flow on the real embedded broker and registry, with a real worker process."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ecoshare.codec.wire import frame
from ecoshare.domain.partners import Role
from ecoshare.governance.supervisor import WorkerProcess
from tests.integration.governed_platform import (
    GovernedPlatform,
    agreement,
    consent,
    location_availability,
    partner,
    put_all,
    quarantine_reason,
    raw_producer,
    read_quarantine,
    read_until_seen,
    signed_headers,
    store_status,
    wait_until,
)

TYPE = "StoreStatusChanged"
NORTH_FIELDS = {
    "event_id": "deliver",
    "location_id": "deliver",
    "status": "deliver",
    "postal_code": "deliver",
    "contact_name": "deliver",
    "contact_phone": "deliver",
}


@pytest.fixture(scope="module")
def platform(
    bootstrap_servers: str, registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> GovernedPlatform:
    governed = GovernedPlatform.prepare(
        bootstrap_servers, registry_url, tmp_path_factory.mktemp("gov")
    )
    with governed.control() as writer:
        put_all(
            writer,
            partners=[
                partner("postnl", Role.PUBLISHER, Role.OPERATOR),
                partner("shops", Role.PUBLISHER),
                partner("carrier-north", Role.SUBSCRIBER),
                partner("carrier-south", Role.SUBSCRIBER),
                partner("consumer-app", Role.SUBSCRIBER),
            ],
            agreements=[
                agreement("north", "carrier-north", NORTH_FIELDS),
                agreement(
                    "south",
                    "carrier-south",
                    {
                        "event_id": "deliver",
                        "location_id": "deliver",
                        "status": "deliver",
                        "postal_code": "deliver",
                    },
                    row_filters=[
                        {"field": "postal_code", "op": "prefix", "prefix_range": ["50", "99"]}
                    ],
                ),
                agreement(
                    "app",
                    "consumer-app",
                    {
                        "event_id": "deliver",
                        "location_id": "deliver",
                        "status": "deliver",
                        "latitude": {"action": "generalise", "decimals": 2},
                        "longitude": {"action": "generalise", "decimals": 2},
                        "effective_from": {"action": "generalise", "truncate_to": "hour"},
                        "contact_name": "deliver",
                    },
                ),
            ],
            consents=[consent("c-north", "owner-1", "carrier-north")],
        )
    return governed


@pytest.fixture(scope="module")
def worker(platform: GovernedPlatform) -> Iterator[WorkerProcess]:
    with platform.worker() as running:
        yield running


def test_each_subscriber_receives_exactly_its_governed_view(
    platform: GovernedPlatform, worker: WorkerProcess
) -> None:
    events = [
        store_status(
            n, postal_code="1012 AB" if n % 2 else "5611 AB", subject="owner-1" if n % 3 else None
        )
        for n in range(1, 201)
    ]
    with platform.publisher("postnl") as publisher:
        for event in events:
            publisher.publish(event, TYPE)

    published = {str(e["event_id"]) for e in events}
    in_south = {str(e["event_id"]) for e in events if e["postal_code"].startswith("56")}

    def received(subscriber_id: str, expected: set[str]) -> dict[str, Any]:
        # Only this test's events: the module's other tests deliver to the same topics.
        deliveries = read_until_seen(platform.subscriber(subscriber_id), expected)
        return {
            d.record["event_id"]: d.record for d in deliveries if d.record["event_id"] in published
        }

    north = received("carrier-north", published)
    south = received("carrier-south", in_south)
    app = received("consumer-app", published)

    assert len(north) == 200 and len(app) == 200
    assert set(south) == in_south
    for event in events:
        received = north[event["event_id"]]
        assert set(received) == set(NORTH_FIELDS)
        assert received["contact_name"] == event["contact_name"]  # consented subject only
        shown = app[event["event_id"]]
        assert shown["latitude"] == 52.37 and shown["longitude"] == 4.89
        assert shown["effective_from"].minute == 0 and shown["effective_from"].second == 0
        assert shown["contact_name"] is None  # no consent towards consumer-app
        assert "contact_phone" not in shown and "street" not in shown
    for subscriber in ("carrier-north", "carrier-south", "consumer-app"):
        received = worker.metric("ecoshare_subscriber_events_received_total", subscriber=subscriber)
        accounted = (
            worker.metric("ecoshare_events_delivered_total", subscriber=subscriber)
            + worker.metric("ecoshare_events_withheld_total", subscriber=subscriber)
            + worker.metric("ecoshare_subscriber_events_quarantined_total", subscriber=subscriber)
        )
        assert received == accounted >= 200
    assert (
        worker.metric(
            "ecoshare_events_withheld_total", subscriber="carrier-south", reason="row_filter"
        )
        >= 100
    )


def test_bad_input_is_quarantined_while_good_events_keep_flowing(
    platform: GovernedPlatform, worker: WorkerProcess
) -> None:
    topic = platform.names.ingress(TYPE)
    with platform.publisher("postnl") as publisher:
        _, key, good = publisher.encode(store_status(10_001), TYPE)
        _, _, other = publisher.encode(store_status(10_002), TYPE)
        _, _, spoofed = publisher.encode(store_status(10_003), TYPE)
        _, last_key, last_good = publisher.encode(store_status(10_004), TYPE)
        _, _, availability = publisher.encode(
            location_availability(10_005, location_id="sp-0001"), "LocationAvailability"
        )

    def signed(
        value: bytes, signer: str = "postnl", record_key: bytes = key
    ) -> list[tuple[str, bytes]]:
        return signed_headers(value, record_key, signer=signer)

    bad = {
        "truncated_payload": good[:-9],
        "bad_framing": b"\x07" + good[1:],
        "unknown_schema_id": frame(987_654, good[5:]),
        "oversize_event": good + b"\x00" * 70_000,
        "schema_not_for_topic": availability,  # a LocationAvailability on this topic
    }
    producer = raw_producer(platform.bootstrap_servers)
    producer.produce(topic, key=key, value=good, headers=signed(good))
    for value in bad.values():
        producer.produce(topic, key=key, value=value, headers=signed(value))
    producer.produce(topic, key=key, value=spoofed, headers=signed(spoofed, "shops"))
    producer.produce(topic, key=key, value=good, headers=signed(good))  # same event id again
    producer.produce(topic, key=key, value=other, headers=[])
    producer.produce(
        topic, key=last_key, value=last_good, headers=signed(last_good, record_key=last_key)
    )
    producer.flush(10)

    reasons = Counter(quarantine_reason(message) for message in read_quarantine(platform, 8))
    assert reasons == Counter(
        {**dict.fromkeys(bad, 1), "unauthenticated_publisher": 2, "duplicate_event_id": 1}
    )
    # The module's earlier tests delivered to carrier-north too: wait for this test's own.
    good_ids = [str(store_status(n)["event_id"]) for n in (10_001, 10_004)]
    delivered = {
        d.record["event_id"]
        for d in read_until_seen(platform.subscriber("carrier-north"), good_ids, 30)
    }
    assert set(good_ids) <= delivered
    # Neither the spoofed event nor the unsigned one was delivered.
    assert str(store_status(10_002)["event_id"]) not in delivered
    assert str(store_status(10_003)["event_id"]) not in delivered
    assert worker.alive()
    lag = worker.metric("ecoshare_ingress_consumer_lag_messages", topic=topic)
    assert lag == 0  # everything consumed: the gauge exists and reports no backlog
    assert worker.metric("ecoshare_active_agreements") == 3


def test_consent_withdrawal_is_enforced_within_a_second(
    platform: GovernedPlatform, worker: WorkerProcess
) -> None:
    with platform.control() as writer:
        put_all(writer, consents=[consent("c-live", "owner-live", "carrier-north")])
    subscriber = platform.subscriber("carrier-north")
    stop = threading.Event()
    published: list[tuple[str, float]] = []

    def publish_continuously() -> None:
        with platform.publisher("postnl") as publisher:
            number = 20_000
            while not stop.is_set():
                number += 1
                event = store_status(number, subject="owner-live")
                publisher.publish(event, TYPE)
                publisher.flush()
                published.append((str(event["event_id"]), time.time()))
                time.sleep(0.01)

    thread = threading.Thread(target=publish_continuously, daemon=True)
    thread.start()
    try:
        # Consent in force long enough to be seen: deliveries of events published a
        # second before the withdrawal (waited for, not slept: a loaded machine is slow).
        delivered_before = worker.metric(
            "ecoshare_events_delivered_total", subscriber="carrier-north"
        )
        wait_until(
            lambda: (
                bool(published)
                and time.time() - published[0][1] > 1.0
                and worker.metric("ecoshare_events_delivered_total", subscriber="carrier-north")
                >= delivered_before + 20
            ),
            "deliveries under the consent",
        )
        withdrawal = consent(
            "c-live", "owner-live", "carrier-north", withdrawn_at=datetime.now(UTC).isoformat()
        )
        with platform.control() as writer:
            put_all(writer, consents=[withdrawal])
        stored_at = time.time()
        # Events go on for a second and a half after the withdrawal, whatever it takes.
        wait_until(
            lambda: published[-1][1] > stored_at + 1.5, "events published after the withdrawal"
        )
    finally:
        stop.set()
        thread.join()
    sent_at = dict(published)
    deliveries = [
        d for d in read_until_seen(subscriber, sent_at, 30) if d.record["event_id"] in sent_at
    ]
    assert len({d.record["event_id"] for d in deliveries}) == len(published)
    personal_after = [
        sent_at[d.record["event_id"]] - stored_at
        for d in deliveries
        if d.record["contact_name"] is not None and sent_at[d.record["event_id"]] > stored_at
    ]
    before = [d for d in deliveries if sent_at[d.record["event_id"]] < stored_at - 0.5]
    assert any(d.record["contact_name"] for d in before), "consent was active before"
    # Every event published a second or more after the withdrawal was stored is clean;
    # the enforcement delay is how long personal data still flowed.
    delay = max(personal_after, default=0.0)
    print(f"withdrawal → enforcement delay: {delay * 1000:.0f} ms")
    assert delay < 1.0
    assert worker.metric("ecoshare_consent_enforcement_delay_seconds_count") >= 1
