"""The health evaluator's metrics: reciprocity, coverage, idle agreements, freshness."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ecoshare.adapters.metrics.exposition import PREFIX


class HealthMetrics:
    """Ecosystem health, computed over a trailing window by the health evaluator.

    Attributes:

    - ``partner_events_contributed`` [``ecoshare_partner_events_contributed``] {partner}:
      events the partner published in the window.
    - ``partner_events_received`` [``ecoshare_partner_events_received``] {partner}:
      events delivered to the partner in the window.
    - ``partner_reciprocity_ratio`` [``ecoshare_partner_reciprocity_ratio``] {partner}:
      contributed / (contributed + received), 0..1; 0.5 is balanced.
    - ``publisher_coverage_ratio`` [``ecoshare_publisher_coverage_ratio``]
      {publisher, event_type}: share of the publisher's known locations that reported in
      the window, 0..1.
    - ``agreement_idle`` [``ecoshare_agreement_idle``] {agreement}: 1 when the agreement
      delivered nothing in the last day, else 0.
    - ``freshness_sla_breaches`` [``ecoshare_freshness_sla_breaches_total``]
      {event_type, publisher}: times a publisher went silent past its freshness SLA.
    - ``active_publishers`` [``ecoshare_active_publishers``] and ``active_subscribers``
      [``ecoshare_active_subscribers``]: partners that published / received in the window.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.partner_events_contributed = Gauge(
            f"{PREFIX}_partner_events_contributed",
            "Events the partner published in the health window.",
            ["partner"],
            registry=registry,
        )
        self.partner_events_received = Gauge(
            f"{PREFIX}_partner_events_received",
            "Events delivered to the partner in the health window.",
            ["partner"],
            registry=registry,
        )
        self.partner_reciprocity_ratio = Gauge(
            f"{PREFIX}_partner_reciprocity_ratio",
            "Contributed / (contributed + received) in the health window, 0..1.",
            ["partner"],
            registry=registry,
        )
        self.publisher_coverage_ratio = Gauge(
            f"{PREFIX}_publisher_coverage_ratio",
            "Share of a publisher's known locations that reported in the window, 0..1.",
            ["publisher", "event_type"],
            registry=registry,
        )
        self.agreement_idle = Gauge(
            f"{PREFIX}_agreement_idle",
            "1 when the agreement delivered nothing in the last day, else 0.",
            ["agreement"],
            registry=registry,
        )
        self.freshness_sla_breaches = Counter(
            f"{PREFIX}_freshness_sla_breaches",
            "Times a publisher's newest event became older than the freshness SLA.",
            ["event_type", "publisher"],
            registry=registry,
        )
        self.active_publishers = Gauge(
            f"{PREFIX}_active_publishers",
            "Partners that published at least one event in the health window.",
            registry=registry,
        )
        self.active_subscribers = Gauge(
            f"{PREFIX}_active_subscribers",
            "Partners that received at least one event in the health window.",
            registry=registry,
        )
