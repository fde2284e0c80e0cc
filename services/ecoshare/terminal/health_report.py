"""The health report, printed for a person: ``ecoshare health`` without ``--output json``.

Reads only the report's JSON shape (see :meth:`ecoshare.health.model.EcosystemHealth.report`),
so it prints a report fetched over HTTP as well as one computed in-process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from ecoshare.terminal.tables import print_table

__all__ = ["format_age", "render_report"]


def format_age(seconds: float | None) -> str:
    """A duration in seconds, to its two largest units: ``"2d 3h"``, ``"3h 12m"``,
    ``"4m 05s"``, ``"15m"``, ``"12s"``; ``None`` is ``"never"``."""
    if seconds is None:
        return "never"
    days, rest = divmod(max(0, int(seconds)), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _ago(moment: str | None, now: str | None) -> str:
    """How long before the report ``moment`` was, both ISO 8601; ``"never"`` for None."""
    if moment is None:
        return "never"
    if now is None:
        return moment
    elapsed = datetime.fromisoformat(now) - datetime.fromisoformat(moment)
    return f"{format_age(elapsed.total_seconds())} ago"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def render_report(report: Mapping[str, Any], console: Console) -> None:
    """Print ``report`` as rich tables: totals, partners, stale streams, coverage, idle
    agreements, and withheld and quarantined events by reason. Empty sections print
    one line saying so."""
    totals = report.get("totals", {})
    window = report.get("window", {})
    status = report.get("status") or {}
    heading = (
        f"[bold]ecosystem health[/bold] at {report.get('generated_at', '?')}, "
        f"window {format_age(window.get('window_seconds'))}"
    )
    if status and not status.get("caught_up", True):
        heading += " [yellow](still reading the audit history: figures are partial)[/yellow]"
    console.print(heading)
    console.print(
        f"{totals.get('active_publishers', 0)} active publishers, "
        f"{totals.get('active_subscribers', 0)} active subscribers, "
        f"{totals.get('events_contributed', 0)} events contributed, "
        f"{totals.get('deliveries', 0)} deliveries, {totals.get('withheld', 0)} withheld, "
        f"{totals.get('quarantined', 0)} quarantined; "
        f"{totals.get('stale_streams', 0)} of {totals.get('streams', 0)} streams stale, "
        f"{totals.get('idle_agreements', 0)} of {totals.get('agreements_in_force', 0)} "
        "agreements in force idle."
    )
    _partners(report.get("partners", ()), console)
    _stale(report.get("freshness", ()), console)
    _coverage(report.get("coverage", ()), console)
    _idle(report.get("agreements", ()), report.get("generated_at"), console)
    _reasons("withheld", report.get("withheld", ()), console)
    _reasons("quarantined", report.get("quarantined", ()), console)
    if status.get("last_error"):
        console.print(f"[red]monitor error:[/red] {status['last_error']}")


def _partners(rows: Sequence[Mapping[str, Any]], console: Console) -> None:
    if not rows:
        console.print("no partners yet")
        return
    table = Table(title="partners (contributed vs received in the window)")
    table.add_column("partner")
    table.add_column("name")
    for name in ("contributed", "received", "withheld", "quarantined", "reciprocity"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            row["partner"],
            row.get("name") or ("[dim]not registered[/dim]" if not row.get("registered") else ""),
            str(row["contributed"]),
            str(row["received"]),
            str(row.get("withheld", 0)),
            str(row.get("quarantined", 0)),
            _ratio(row.get("reciprocity_ratio")),
        )
    print_table(table, console)


def _stale(rows: Sequence[Mapping[str, Any]], console: Console) -> None:
    stale = [row for row in rows if row.get("stale")]
    if not stale:
        console.print("every publisher reports within its freshness SLA")
        return
    table = Table(title="stale publishers (newest report older than the SLA)")
    table.add_column("publisher")
    table.add_column("event type")
    table.add_column("last seen", justify="right")
    table.add_column("SLA", justify="right")
    table.add_column("breaches", justify="right")
    for row in sorted(stale, key=lambda item: -float(item["age_seconds"])):
        table.add_row(
            row["publisher"],
            row["event_type"],
            f"{format_age(row['age_seconds'])} ago",
            format_age(row["sla_seconds"]),
            str(row["breaches"]),
        )
    print_table(table, console)


def _coverage(rows: Sequence[Mapping[str, Any]], console: Console) -> None:
    if not rows:
        return
    table = Table(title="coverage (known locations that reported within the SLA)")
    table.add_column("publisher")
    table.add_column("event type")
    table.add_column("fresh / known", justify="right")
    table.add_column("coverage", justify="right")
    for row in rows:
        table.add_row(
            row["publisher"],
            row["event_type"],
            f"{row['fresh_locations']} / {row['known_locations']}",
            _percent(float(row["coverage_ratio"])),
        )
    print_table(table, console)


def _idle(rows: Sequence[Mapping[str, Any]], now: str | None, console: Console) -> None:
    idle = [row for row in rows if row.get("idle")]
    if not idle:
        if rows:
            console.print("every agreement in force delivered in the last day")
        return
    table = Table(title="idle agreements (in force, nothing delivered in the last day)")
    table.add_column("agreement")
    table.add_column("subscriber")
    table.add_column("publishers")
    table.add_column("event types")
    table.add_column("last delivery")
    for row in idle:
        table.add_row(
            f"{row['agreement_id']} v{row['version']}",
            row["subscriber"],
            ", ".join(row["publishers"]),
            ", ".join(row["event_types"]),
            _ago(row.get("last_delivered_at"), now),
        )
    print_table(table, console)


def _reasons(kind: str, rows: Sequence[Mapping[str, Any]], console: Console) -> None:
    if not rows:
        return
    table = Table(title=f"{kind} by reason")
    table.add_column("reason")
    table.add_column("events", justify="right")
    for row in sorted(rows, key=lambda item: (-int(item["events"]), item["reason"])):
        table.add_row(row["reason"], str(row["events"]))
    print_table(table, console)
