"""A health report turned into the health evaluator's Prometheus series."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecoshare.adapters.metrics import HealthMetrics


@dataclass(slots=True)
class ExportedSeries:
    """What one :class:`~ecoshare.adapters.metrics.HealthMetrics` has been given, to remove
    and increment exactly."""

    partners: set[str] = field(default_factory=set)
    agreements: set[str] = field(default_factory=set)
    breaches: dict[tuple[str, str], int] = field(default_factory=dict)


def export_report(body: dict[str, Any], metrics: HealthMetrics, exported: ExportedSeries) -> None:
    """Set ``metrics`` from a health report ``body`` (:meth:`EcosystemHealth.report`).

    ``exported`` is what was given to the same ``metrics`` before: series of partners
    that left the report and of agreements no longer in force are removed, and the
    breach counter grows by the breaches counted since.
    """
    partners: set[str] = set()
    for row in body["partners"]:
        partner = row["partner"]
        partners.add(partner)
        metrics.partner_events_contributed.labels(partner).set(row["contributed"])
        metrics.partner_events_received.labels(partner).set(row["received"])
        if row["reciprocity_ratio"] is None:
            _remove(metrics.partner_reciprocity_ratio, partner)
        else:
            metrics.partner_reciprocity_ratio.labels(partner).set(row["reciprocity_ratio"])
    for partner in exported.partners - partners:
        _remove(metrics.partner_events_contributed, partner)
        _remove(metrics.partner_events_received, partner)
        _remove(metrics.partner_reciprocity_ratio, partner)
    exported.partners = partners
    for row in body["coverage"]:
        metrics.publisher_coverage_ratio.labels(row["publisher"], row["event_type"]).set(
            row["coverage_ratio"]
        )
    for row in body["freshness"]:
        key = (row["event_type"], row["publisher"])
        counter = metrics.freshness_sla_breaches.labels(*key)
        new = row["breaches"] - exported.breaches.get(key, 0)
        if new > 0:
            counter.inc(new)
        exported.breaches[key] = row["breaches"]
    agreements: set[str] = set()
    for row in body["agreements"]:
        agreements.add(row["agreement_id"])
        metrics.agreement_idle.labels(row["agreement_id"]).set(1 if row["idle"] else 0)
    for agreement_id in exported.agreements - agreements:
        _remove(metrics.agreement_idle, agreement_id)
    exported.agreements = agreements
    metrics.active_publishers.set(body["totals"]["active_publishers"])
    metrics.active_subscribers.set(body["totals"]["active_subscribers"])


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
