"""``ecoshare demo``: the PostNL lockdown day, governed, end to end on the embedded platform.

Starts the platform, applies ``examples/postnl/governance.yaml``, records the franchise
owners' consents, publishes a simulated lockdown day from three publishers, withdraws
one owner's consent halfway, tries a spoofed event, and prints per subscriber what was
delivered, what was withheld and why, and what the withdrawal changed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from ecoshare.application.consent import withdraw_consent
from ecoshare.application.governance import apply_governance, plan_governance
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.config.governance_file import load_governance_file
from ecoshare.config.secrets import signing_secret
from ecoshare.config.settings import REPO_ROOT, Settings
from ecoshare.demo import scenario
from ecoshare.demo.control import DemoControl
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.identity import partner_signing_key
from ecoshare.embedded.platform import Platform
from ecoshare.errors import EcoshareError
from ecoshare.sdk import Publisher, Subscriber

DEMO_FILE = REPO_ROOT / "examples" / "postnl" / "governance.yaml"
WITHDRAWAL_AFTER = timedelta(hours=10, minutes=30)
SUBSCRIPTIONS = (
    (scenario.CARRIER_NORTH_ID, scenario.STORE_STATUS_CHANGED),
    (scenario.CARRIER_SOUTH_ID, scenario.STORE_STATUS_CHANGED),
    (scenario.CONSUMER_APP_ID, scenario.STORE_STATUS_CHANGED),
    (scenario.CONSUMER_APP_ID, scenario.LOCATION_AVAILABILITY),
)


@dataclass
class DemoReport:
    published: Counter[str] = field(default_factory=Counter)
    received: Counter[tuple[str, str]] = field(default_factory=Counter)
    with_contact: Counter[str] = field(default_factory=Counter)
    withdrawn_subject: str = ""
    withdrawn_grantee: str = ""
    withdrawn_locations: set[str] = field(default_factory=set)
    owner_events: int = 0
    owner_events_before_withdrawal: int = 0
    contact_before_withdrawal: int = 0
    contact_after_withdrawal: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    withheld: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)


def _today_start() -> datetime:
    cet = datetime.now(UTC).astimezone(scenario.REFERENCE_DAY_START.tzinfo)
    return cet.replace(hour=0, minute=0, second=0, microsecond=0)


def run_demo(
    settings: Settings, *, locations: int = 400, console: Console | None = None
) -> DemoReport:
    """Run the governed scenario; returns what happened (also printed)."""
    console = console or Console()
    report = DemoReport()
    started = time.monotonic()
    with console.status("starting the embedded platform (broker, registry, workers)…"):
        platform = Platform(settings, start_api=False).start()
    try:
        if platform.broker_decision is not None:
            console.print(str(platform.broker_decision))
        console.print(
            f"[bold]platform up[/] in {time.monotonic() - started:.1f}s — Kafka "
            f"{platform.bootstrap_servers}, registry {platform.schema_registry_url}, "
            f"{len(platform.workers)} governance workers"
        )
        _run(platform, settings, report, locations, console)
    finally:
        with console.status("stopping the platform…"):
            platform.stop()
    console.print(f"[bold green]demo finished[/] in {time.monotonic() - started:.1f}s")
    return report


def _run(
    platform: Platform, settings: Settings, report: DemoReport, count: int, console: Console
) -> None:
    names = platform.names
    document = load_governance_file(DEMO_FILE).document
    secret = signing_secret(settings)
    start = _today_start()
    places = scenario.generate_locations(count, seed=2020)
    consents = scenario.generate_consents(places, start, seed=2020)
    with DemoControl.open(platform.bootstrap_servers, names) as control:
        plan = plan_governance(
            list(document.partners),
            list(document.agreements),
            control,
            load_catalog(settings.schemas_dir).event_schemas(),
            source=str(DEMO_FILE),
        )
        apply_governance(plan, control, prune=False)
        for record in consents.records:
            consent = ConsentRecord.model_validate(record)
            control.write("consent", consent.consent_id, consent)
        console.print(
            f"applied {DEMO_FILE.relative_to(REPO_ROOT)}: {len(document.partners)} partners, "
            f"{len(document.agreements)} agreements; {len(consents.records)} owner consents"
        )
        subscribers = {
            (partner, event_type): Subscriber(
                bootstrap_servers=platform.bootstrap_servers,
                schema_registry_url=platform.schema_registry_url,
                subscriber_id=partner,
                event_type=event_type,
                topic_prefix=settings.topic_prefix,
            )
            for partner, event_type in SUBSCRIPTIONS
        }
        publishers = {
            partner.partner_id: Publisher(
                bootstrap_servers=platform.bootstrap_servers,
                schema_registry_url=platform.schema_registry_url,
                partner_id=partner.partner_id,
                signing_key=partner_signing_key(secret, partner.partner_id, 1),
                schemas_dir=settings.schemas_dir,
                topic_prefix=settings.topic_prefix,
            )
            for partner in document.partners
            if "publisher" in partner.roles
        }
        events = list(scenario.lockdown_day(places, start, seed=2020))
        withdrawal_ms = scenario.epoch_millis(start + WITHDRAWAL_AFTER)
        half = next(
            (i for i, (_, record) in enumerate(events) if record["occurred_at"] >= withdrawal_ms),
            len(events) // 2,
        )
        withdrawn = _consent_to_withdraw(consents, places, events, half)
        report.withdrawn_subject = str(withdrawn["subject"])
        report.withdrawn_grantee = str(withdrawn["grantee"])
        report.withdrawn_locations = {
            place.location_id
            for place in places
            if place.contact_subject_id == report.withdrawn_subject
        }
        with console.status(f"publishing {len(events)} events of a lockdown day…"):
            for event_type, record in events[:half]:
                publishers[str(record["publisher_id"])].publish(record, event_type)
                report.published[event_type] += 1
            for publisher in publishers.values():
                publisher.flush()
            _drain(platform, subscribers, report)
            withdrawal = withdraw_consent(str(withdrawn["consent_id"]), control, control)
            console.print(
                f"consent {withdrawal.consent_id[:8]}… of owner {withdrawal.subject} towards "
                f"{withdrawal.grantee} [bold red]withdrawn[/] mid-day"
            )
            report.contact_before_withdrawal = report.with_contact[report.withdrawn_subject]
            report.owner_events_before_withdrawal = report.owner_events
            time.sleep(1.0)
            for event_type, record in events[half:]:
                publishers[str(record["publisher_id"])].publish(record, event_type)
                report.published[event_type] += 1
            for publisher in publishers.values():
                publisher.flush()
            _spoof(platform, settings, places, publishers, report)
            _drain(platform, subscribers, report)
        report.contact_after_withdrawal = (
            report.with_contact[report.withdrawn_subject] - report.contact_before_withdrawal
        )
        for subscriber in subscribers.values():
            subscriber.close()
    _collect_metrics(platform, report)
    _print(report, console)
    _print_health(platform, console)


DEMO_FRESHNESS_SLA = {
    scenario.STORE_STATUS_CHANGED: timedelta(days=1),
    scenario.LOCATION_AVAILABILITY: timedelta(days=1),
}
"""Freshness SLAs of the demo's health report: the demo publishes a whole simulated day
at once, so a stream is fresh when it reported during that day; the platform's own
SLAs (15 minutes for availability) would flag its replayed morning as stale."""

CLOSING_NOTE = (
    "the demo's platform has stopped; `ecoshare up` keeps one running, with metrics, "
    "`ecoshare health` and the HTTP API"
)


def _print_health(platform: Platform, console: Console) -> None:
    """The ecosystem health report, computed from the audit trail as the API serves it."""
    from prometheus_client import CollectorRegistry

    from ecoshare.health.monitor import HealthMonitor
    from ecoshare.terminal.health_report import render_report

    with HealthMonitor(
        platform.bootstrap_servers,
        platform.names,
        CollectorRegistry(),
        freshness_sla=DEMO_FRESHNESS_SLA,
    ) as monitor:
        if monitor.wait_until_caught_up(30.0):
            console.rule("ecosystem health")
            render_report(monitor.report(), console)
    # No metrics URLs: they die with the demo's platform, right after this line.
    console.print(CLOSING_NOTE)


def _consent_to_withdraw(
    consents: scenario.ScenarioConsents,
    places: list[scenario.Location],
    events: list[tuple[str, dict[str, Any]]],
    split: int,
) -> dict[str, Any]:
    """A consent whose owner's shop reports both before and after the withdrawal."""
    location_of = {place.contact_subject_id: place.location_id for place in places}
    before = Counter(str(record["location_id"]) for _, record in events[:split])
    after = Counter(str(record["location_id"]) for _, record in events[split:])
    for record in consents.records:
        location = location_of.get(str(record["subject"]))
        if location and before[location] and after[location]:
            return dict(record)
    return consents.consent_to_withdraw()


def _spoof(
    platform: Platform,
    settings: Settings,
    places: list[scenario.Location],
    publishers: dict[str, Publisher],
    report: DemoReport,
) -> None:
    """A retail chain trying to publish a status change in PostNL's name."""
    impostor = Publisher(
        bootstrap_servers=platform.bootstrap_servers,
        schema_registry_url=platform.schema_registry_url,
        partner_id=scenario.OPERATOR_ID,
        signing_key=partner_signing_key(signing_secret(settings), scenario.RETAIL_CHAIN_ID, 1),
        schemas_dir=settings.schemas_dir,
        topic_prefix=settings.topic_prefix,
    )
    target = next(place for place in places if place.publisher_id == scenario.OPERATOR_ID)
    _, record = next(
        (event_type, record)
        for event_type, record in scenario.lockdown_day([target], _today_start(), seed=7)
        if event_type == scenario.STORE_STATUS_CHANGED
    )
    record = dict(record, status="CLOSED", reason="spoofed")
    impostor.publish(record, scenario.STORE_STATUS_CHANGED)
    impostor.flush()
    report.published["spoofed"] += 1


def _worker_totals(platform: Platform) -> tuple[int, Counter[tuple[str, str]]]:
    """(events governed, deliveries per (subscriber, event type)) summed over workers."""
    governed = 0
    delivered: Counter[tuple[str, str]] = Counter()
    for worker in platform.workers:
        for sample in worker.samples():
            if sample.name == "ecoshare_events_received_total":  # quarantined included
                governed += int(sample.value)
            elif sample.name == "ecoshare_events_delivered_total":
                key = (sample.labels["subscriber"], sample.labels["event_type"])
                delivered[key] += int(sample.value)
    return governed, delivered


def _drain(
    platform: Platform,
    subscribers: dict[tuple[str, str], Subscriber],
    report: DemoReport,
    timeout_seconds: float = 60.0,
) -> None:
    """Read deliveries until every published event is governed and every delivery read."""
    published = sum(report.published.values())
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for (partner, event_type), subscriber in subscribers.items():
            while (delivery := subscriber.poll(0.05)) is not None:
                report.received[(partner, event_type)] += 1
                _note_contact(report, partner, delivery.record)
        governed, delivered = _worker_totals(platform)
        if governed >= published and all(
            report.received[key] >= delivered[key] for key in subscribers
        ):
            return
    raise EcoshareError("the demo's deliveries did not all arrive within a minute")


def _note_contact(report: DemoReport, partner: str, record: dict[str, Any]) -> None:
    if partner == report.withdrawn_grantee and record.get("location_id") in (
        report.withdrawn_locations
    ):
        report.owner_events += 1
        if record.get("contact_name"):
            report.with_contact[report.withdrawn_subject] += 1
    if record.get("contact_name"):
        report.with_contact["*"] += 1


def _collect_metrics(platform: Platform, report: DemoReport) -> None:
    for worker in platform.workers:
        for sample in worker.samples():
            if sample.name == "ecoshare_events_withheld_total":
                key = (sample.labels["subscriber"], sample.labels["reason"])
                report.withheld[key] += int(sample.value)
            elif sample.name == "ecoshare_events_quarantined_total":
                report.quarantined[sample.labels["reason"]] += int(sample.value)


def _print(report: DemoReport, console: Console) -> None:
    published = Table(title="Published")
    published.add_column("event type")
    published.add_column("events", justify="right")
    for event_type, count in sorted(report.published.items()):
        published.add_row(event_type, str(count))
    console.print(published)
    table = Table(title="Per subscriber: delivered, and withheld with the reason")
    table.add_column("subscriber")
    table.add_column("delivered", justify="right")
    table.add_column("withheld (reason: events)")
    for partner in sorted({partner for partner, _ in SUBSCRIPTIONS}):
        delivered = ", ".join(
            f"{event_type} {count}"
            for (who, event_type), count in sorted(report.received.items())
            if who == partner
        )
        withheld = ", ".join(
            f"{reason}: {count}"
            for (who, reason), count in sorted(report.withheld.items())
            if who == partner
        )
        table.add_row(partner, delivered or "0", withheld or "-")
    console.print(table)
    console.print(
        f"owner contact details delivered under consent: {report.with_contact['*']} records; "
        f"owner {report.withdrawn_subject} → {report.withdrawn_grantee}: contact details in "
        f"{report.contact_before_withdrawal} of {report.owner_events_before_withdrawal} "
        f"events before the withdrawal, in {report.contact_after_withdrawal} of "
        f"{report.owner_events - report.owner_events_before_withdrawal} after it"
    )
    quarantined = ", ".join(f"{reason}: {count}" for reason, count in report.quarantined.items())
    console.print(f"quarantined: {quarantined or 'nothing'}")
