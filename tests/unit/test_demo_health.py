"""The demo's health report judges its own replayed day fairly, and names no dead URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecoshare.demo import scenario
from ecoshare.demo.runner import CLOSING_NOTE, DEMO_FRESHNESS_SLA
from ecoshare.health.model import AcceptedEvent, EcosystemHealth

DAY = datetime(2020, 3, 16, tzinfo=scenario.REFERENCE_DAY_START.tzinfo)


def _stale_streams(freshness_sla: dict[str, timedelta] | None) -> list[object]:
    """Stale streams when the demo's whole day was published at once, judged late in the
    evening (the demo may run at any hour; late is the worst case)."""
    places = scenario.generate_locations(60, seed=2020)
    health = EcosystemHealth(freshness_sla=freshness_sla)
    now = DAY + timedelta(hours=23, minutes=59)
    now_ms = int(now.timestamp() * 1000)
    for event_type, record in scenario.lockdown_day(places, DAY, seed=2020):
        health.record_event(
            AcceptedEvent(
                event_id=str(record["event_id"]),
                event_type=event_type,
                publisher_id=str(record["publisher_id"]),
                location_id=str(record["location_id"]),
                published_ms=int(record["published_at"]),
                decided_at_ms=now_ms,
            )
        )
    report = health.report(now.astimezone(UTC))
    return [row for row in report["freshness"] if row["stale"]]


def test_the_platform_slas_would_flag_the_replayed_day_as_stale() -> None:
    assert _stale_streams(None), "the demo SLA below would be pointless"


def test_the_demo_judges_its_day_with_day_long_slas() -> None:
    event_types = {scenario.STORE_STATUS_CHANGED, scenario.LOCATION_AVAILABILITY}
    assert set(DEMO_FRESHNESS_SLA) == event_types
    assert _stale_streams(DEMO_FRESHNESS_SLA) == []


@pytest.mark.parametrize("dead", ["http://", "/metrics"])
def test_the_closing_note_names_no_url_that_dies_with_the_demo(dead: str) -> None:
    assert dead not in CLOSING_NOTE
    assert "ecoshare up" in CLOSING_NOTE
