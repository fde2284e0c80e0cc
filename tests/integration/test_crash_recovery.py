"""A worker killed with SIGKILL mid-stream loses nothing and repeats nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.governed_platform import (
    GovernedPlatform,
    audit_decisions,
    put_north_and_south,
    read_all,
    store_status,
)

pytestmark = pytest.mark.slow  # 30,000 events, a SIGKILL and a restart

TYPE = "StoreStatusChanged"
EVENTS = 30_000


@pytest.fixture
def platform(bootstrap_servers: str, registry_url: str, tmp_path: Path) -> GovernedPlatform:
    governed = GovernedPlatform.prepare(bootstrap_servers, registry_url, tmp_path)
    put_north_and_south(governed)
    return governed


def test_sigkill_mid_stream_then_restart_delivers_every_event_exactly_once(
    platform: GovernedPlatform,
) -> None:
    events = [
        store_status(n, postal_code="5611 AB" if n % 2 else "1012 AB", subject=None)
        for n in range(1, EVENTS + 1)
    ]
    first = platform.worker(1).start()
    published = threading.Event()

    def publish() -> None:
        with platform.publisher("postnl") as publisher:
            for index, event in enumerate(events):
                publisher.publish(event, TYPE)
                if index % 2000 == 1999:
                    publisher.flush()
                    time.sleep(0.1)  # spread the stream over a few seconds
        published.set()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while first.metric("ecoshare_events_delivered_total", subscriber="carrier-north") < 3000:
        assert time.monotonic() < deadline, "the first worker never got going"
        time.sleep(0.05)
    killed_after = first.metric("ecoshare_events_delivered_total", subscriber="carrier-north")
    first.kill()
    assert killed_after < EVENTS, "the kill must land mid-stream"
    thread.join()
    assert published.is_set()

    with platform.worker(2):
        north = read_all(platform.subscriber("carrier-north"), EVENTS, 120)
        south = read_all(platform.subscriber("carrier-south"), EVENTS // 2, 60)

    expected = {e["event_id"] for e in events}
    north_ids = Counter(d.record["event_id"] for d in north)
    south_ids = Counter(d.record["event_id"] for d in south)
    assert set(north_ids) == expected
    assert max(north_ids.values()) == 1, "an event reached carrier-north twice"
    assert set(south_ids) == {e["event_id"] for e in events if e["postal_code"].startswith("5")}
    assert max(south_ids.values()) == 1, "an event reached carrier-south twice"
    # Per-key order survives the crash: each location's events arrive in publish order.
    positions = {e["event_id"]: n for n, e in enumerate(events)}
    by_location: dict[str, list[int]] = {}
    for delivery in north:
        by_location.setdefault(delivery.key.decode(), []).append(
            positions[delivery.record["event_id"]]
        )
    assert all(seq == sorted(seq) for seq in by_location.values())
    # And the audit trail accounts for every (event, subscriber) exactly once.
    decisions = audit_decisions(platform, 15)
    assert len(decisions) == 2 * EVENTS
    assert max(decisions.values()) == 1
