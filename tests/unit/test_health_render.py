"""The health report reads well in a terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from ecoshare.codec.audit_blocks import DecisionRecord
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.timestamps import to_epoch_millis
from ecoshare.health import AcceptedEvent, EcosystemHealth
from ecoshare.terminal.health_report import format_age, render_report

T0 = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)


def rendered(report: dict[str, object]) -> str:
    console = Console(record=True, width=160, color_system=None)
    render_report(report, console)
    return console.export_text()


def scenario_report() -> dict[str, object]:
    health = EcosystemHealth()
    health.set_agreements(
        [
            Agreement.model_validate(
                {
                    "agreement_id": agreement_id,
                    "version": 1,
                    "publishers": ["shop-a"],
                    "subscriber": "carrier-north",
                    "event_types": ["LocationAvailability"],
                    "purpose": "parcel-delivery",
                    "valid_from": T0 - timedelta(days=3),
                }
            )
            for agreement_id in ("agr-used", "agr-unused")
        ]
    )
    at_ms = to_epoch_millis(T0)
    event = AcceptedEvent("ev-1", "LocationAvailability", "shop-a", "locker-1", at_ms, at_ms)
    health.record_event(event)
    health.record_decision(
        DecisionRecord(
            "ev-1",
            "LocationAvailability",
            "shop-a",
            "locker-1",
            at_ms,
            "carrier-north",
            "delivered",
            None,
            "agr-used",
            1,
            (),
            (),
            (),
            {},
            (),
            "ingress:0",
            0,
            at_ms,
            "v",
        )
    )
    health.record_decision(
        DecisionRecord(
            "ev-1",
            "LocationAvailability",
            "shop-a",
            "locker-1",
            at_ms,
            "app-c",
            "withheld",
            "no-agreement",
            None,
            None,
            (),
            (),
            (),
            {},
            (),
            "ingress:0",
            0,
            at_ms,
            "v",
        )
    )
    return health.report(T0 + timedelta(hours=3, minutes=12))


def test_the_report_shows_partners_stale_publishers_coverage_idle_agreements_reasons() -> None:
    text = rendered(scenario_report())

    assert "shop-a" in text
    assert "carrier-north" in text
    assert "1.00" in text  # shop-a only gives
    assert "0.00" in text  # carrier-north only takes
    assert "stale publishers" in text
    assert "3h 12m ago" in text
    assert "0 / 1" in text
    assert "0%" in text
    assert "agr-unused v1" in text
    assert "agr-used v1" not in text
    assert "no-agreement" in text


def test_an_empty_report_prints_without_tables() -> None:
    text = rendered(EcosystemHealth().report(T0))

    assert "no partners yet" in text
    assert "every publisher reports within its freshness SLA" in text


def test_a_partial_report_says_so() -> None:
    report = EcosystemHealth().report(T0)
    report["status"] = {"caught_up": False, "last_error": None}

    assert "figures are partial" in rendered(report)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "never"),
        (12.7, "12s"),
        (245, "4m 05s"),
        (900, "15m"),
        (11_520, "3h 12m"),
        (86_400, "1d"),
        (183_600, "2d 3h"),
    ],
)
def test_ages_read_as_days_hours_minutes_seconds(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text
