"""The platform's Prometheus metrics catalog.

Every metric is constructed on a :class:`~prometheus_client.CollectorRegistry` handed in
by the caller, never on the process-global default registry, so tests and several
services in one process never collide.

Conventions (checked by ``tests/unit/test_metrics_catalog.py``):

- every name starts with ``ecoshare_``; counters end in ``_total``; durations and
  timestamps are in seconds and end in ``_seconds``; ratios end in ``_ratio``;
- label values come from bounded sets only: partner ids, event types, reasons from a
  closed vocabulary, agreement ids, topics and partitions. Event ids, location ids or
  anything else that grows with traffic never become a label.

The governance counters keep the platform's accounting laws visible in Prometheus:

- per event type, ``ecoshare_events_received_total == ecoshare_events_admitted_total
  + ecoshare_events_quarantined_total`` (summed over publishers and reasons);
- per subscriber and event type, ``ecoshare_subscriber_events_received_total ==
  ecoshare_events_delivered_total + ecoshare_events_withheld_total
  + ecoshare_subscriber_events_quarantined_total``;
- per candidate subscriber, ``ecoshare_subscriber_events_received_total`` equals
  ``ecoshare_events_received_total`` of the event type, summed over publishers (for as
  long as the subscriber was a candidate).

Two things make Prometheus see those laws, not just the process:

- a batch's increments are applied under :meth:`GovernanceMetrics.update`, and a
  :class:`ConsistentRegistry` takes the same lock to collect, so no scrape sees half a
  batch;
- :meth:`GovernanceMetrics.declare_series` creates every label set knowable in advance
  at 0 (``rate()`` and ``increase()`` miss the first value of a series, so a series born
  holding a batch under-counts by that batch forever) and removes the ones no longer
  known.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "BATCH_PROCESSING_BUCKETS",
    "CONSENT_ENFORCEMENT_BUCKETS",
    "DELIVERY_LATENCY_BUCKETS",
    "EVENT_PROCESSING_BUCKETS",
    "HTTP_DURATION_BUCKETS",
    "ConsistentRegistry",
    "DeclaredSeries",
    "GovernanceMetrics",
    "HealthMetrics",
    "HttpMetrics",
    "register_build_info",
    "series_names",
    "start_metrics_server",
    "stop_metrics_server",
]

PREFIX = "ecoshare"

# One governed event takes microseconds in the pure domain; the lowest bucket has to
# resolve that, the highest catches a stalled encoder or registry round trip.
EVENT_PROCESSING_BUCKETS: tuple[float, ...] = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
BATCH_PROCESSING_BUCKETS: tuple[float, ...] = (
    1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
# Ingested (broker timestamp) to delivery acknowledged: 1 ms up to a minute.
DELIVERY_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# The product promises consent withdrawal takes effect within one second, so 1.0 is a
# bucket bound and the alert's quantile is exact at the threshold.
CONSENT_ENFORCEMENT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip
HTTP_DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ConsistentRegistry(CollectorRegistry):
    """A registry whose scrape never sees a batch half applied.

    :meth:`collect` holds :attr:`update_lock`; writers that must change several series
    as one fact (a batch's counters) hold it too, via :meth:`GovernanceMetrics.update`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.update_lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self.update_lock:
            families = list(super().collect())
        yield from families


@dataclass(frozen=True)
class DeclaredSeries:
    """The label sets of the governance counters known in advance, from the control
    plane and the catalog.

    ``publishers``: partners holding the publisher role; ``subscribers_by_type``: the
    candidate subscribers of each event type (subscribers holding any agreement naming
    it); ``withhold_reasons`` and ``quarantine_reasons``: the closed vocabularies;
    ``unknown_publisher``: the publisher label of unauthenticated input.
    """

    event_types: tuple[str, ...]
    publishers: frozenset[str]
    subscribers_by_type: Mapping[str, Collection[str]]
    withhold_reasons: tuple[str, ...]
    quarantine_reasons: tuple[str, ...]
    unknown_publisher: str = "unknown"

    def label_sets(self) -> dict[str, set[tuple[str, ...]]]:
        """Metric attribute name of :class:`GovernanceMetrics` -> its label tuples."""
        types = self.event_types
        pairs: set[tuple[str, ...]] = {
            (subscriber, event_type)
            for event_type in types
            for subscriber in self.subscribers_by_type.get(event_type, ())
        }
        return {
            "events_received": {
                (publisher, event_type)
                for publisher in (*self.publishers, self.unknown_publisher)
                for event_type in types
            },
            "events_admitted": {
                (publisher, event_type) for publisher in self.publishers for event_type in types
            },
            "events_quarantined": {
                (event_type, reason) for event_type in types for reason in self.quarantine_reasons
            },
            "subscriber_events_received": set(pairs),
            "events_delivered": set(pairs),
            "subscriber_quarantined": set(pairs),
            "events_withheld": {
                (subscriber, event_type, reason)
                for subscriber, event_type in pairs
                for reason in self.withhold_reasons
            },
            "delivery_latency_seconds": {(subscriber,) for subscriber, _ in pairs},
        }


class GovernanceMetrics:
    """Flow, latency, freshness and state of the governance workers.

    Attributes (metric name in brackets; labels in braces):

    - ``events_received`` [``ecoshare_events_received_total``] {publisher, event_type}:
      every ingress message read, before any check, counted once its batch is committed
      (a batch a killed worker did not commit is counted by the worker that re-governs
      it). ``event_type`` is the one named by the ingress topic, so it stays bounded
      even for garbage payloads;
      ``publisher`` is the authenticated sender, ``"unknown"`` when the message is
      quarantined before its signature is verified (unsigned, unknown partner, bad
      signature, empty or oversize).
    - ``events_admitted`` [``ecoshare_events_admitted_total``] {publisher, event_type}:
      messages that passed admission and were governed for their subscribers;
      received = admitted + quarantined.
    - ``events_quarantined`` [``ecoshare_events_quarantined_total``] {event_type, reason}:
      once per quarantined input message.
    - ``subscriber_events_received`` [``ecoshare_subscriber_events_received_total``]
      {subscriber, event_type}: every received message, counted once for each candidate
      subscriber of its event type; equals delivered + withheld + quarantined for that
      subscriber.
    - ``events_delivered`` [``ecoshare_events_delivered_total``] {subscriber, event_type}.
    - ``events_withheld`` [``ecoshare_events_withheld_total``]
      {subscriber, event_type, reason}.
    - ``subscriber_quarantined`` [``ecoshare_subscriber_events_quarantined_total``]
      {subscriber, event_type}: a quarantined message, counted for each candidate subscriber.
    - ``batch_processing_seconds`` [``ecoshare_batch_processing_seconds``]: one batch,
      read to committed.
    - ``event_processing_seconds`` [``ecoshare_event_processing_seconds``]: one event's
      governance decision for all subscribers (buckets from 1 µs).
    - ``delivery_latency_seconds`` [``ecoshare_delivery_latency_seconds``] {subscriber}:
      the ingress record's broker timestamp (the platform's ingest time) to the delivery
      acknowledged by the broker, once per delivered event.
    - ``consent_enforcement_delay_seconds``
      [``ecoshare_consent_enforcement_delay_seconds``]: a consent withdrawal's stored
      ``withdrawn_at`` to a worker deciding with it; once per withdrawal, see
      :class:`~ecoshare.governance.observer.WorkerObserver`.
    - ``last_event_timestamp_seconds`` [``ecoshare_last_event_timestamp_seconds``]
      {publisher, event_type}: the publisher's own ``published_at`` of the newest admitted
      event (freshness, on the publisher's clock).
    - ``ingress_consumer_lag_messages`` [``ecoshare_ingress_consumer_lag_messages``]
      {topic, partition}: for the partitions this worker owns; see :meth:`forget_partition`.
    - ``ingress_partition_stalled_seconds``
      [``ecoshare_ingress_partition_stalled_seconds``] {topic, partition}: how long an
      owned partition with lag has made no progress (0 while it progresses or has none).
    - ``governance_state_version`` [``ecoshare_governance_state_version``] and
      ``governance_state_updated_timestamp_seconds``
      [``ecoshare_governance_state_updated_timestamp_seconds``]: the agreements/partners/
      consents snapshot the worker decides with.
    - ``active_agreements`` [``ecoshare_active_agreements``].
    - ``consents_active`` [``ecoshare_consents_active``] {controller}.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._update_lock: threading.Lock | None = getattr(registry, "update_lock", None)
        self._declared: dict[str, set[tuple[str, ...]]] = {}
        self.events_received = Counter(
            f"{PREFIX}_events_received",
            "Ingress messages read by the governance workers, before any check, including "
            "those then quarantined; publisher 'unknown' when not authenticated.",
            ["publisher", "event_type"],
            registry=registry,
        )
        self.events_admitted = Counter(
            f"{PREFIX}_events_admitted",
            "Ingress messages that passed admission and were governed for their "
            "subscribers; received = admitted + quarantined.",
            ["publisher", "event_type"],
            registry=registry,
        )
        self.subscriber_events_received = Counter(
            f"{PREFIX}_subscriber_events_received",
            "Ingress messages, counted once for each candidate subscriber of their event "
            "type; equals delivered + withheld + quarantined for that subscriber.",
            ["subscriber", "event_type"],
            registry=registry,
        )
        self.events_delivered = Counter(
            f"{PREFIX}_events_delivered",
            "Events delivered to a subscriber's delivery topic.",
            ["subscriber", "event_type"],
            registry=registry,
        )
        self.events_withheld = Counter(
            f"{PREFIX}_events_withheld",
            "Admitted events withheld from a subscriber, by reason.",
            ["subscriber", "event_type", "reason"],
            registry=registry,
        )
        self.events_quarantined = Counter(
            f"{PREFIX}_events_quarantined",
            "Ingress messages put into quarantine, by reason (once per message).",
            ["event_type", "reason"],
            registry=registry,
        )
        self.subscriber_quarantined = Counter(
            f"{PREFIX}_subscriber_events_quarantined",
            "Quarantined ingress messages, counted for each candidate subscriber.",
            ["subscriber", "event_type"],
            registry=registry,
        )
        self.batch_processing_seconds = Histogram(
            f"{PREFIX}_batch_processing_seconds",
            "Time to govern one ingress batch, read to committed, in seconds.",
            registry=registry,
            buckets=BATCH_PROCESSING_BUCKETS,
        )
        self.event_processing_seconds = Histogram(
            f"{PREFIX}_event_processing_seconds",
            "Time to decide one event for all its subscribers, in seconds.",
            registry=registry,
            buckets=EVENT_PROCESSING_BUCKETS,
        )
        self.delivery_latency_seconds = Histogram(
            f"{PREFIX}_delivery_latency_seconds",
            "Ingress record's broker timestamp (platform ingest time) to delivery "
            "acknowledged by the broker, in seconds; once per delivered event.",
            ["subscriber"],
            registry=registry,
            buckets=DELIVERY_LATENCY_BUCKETS,
        )
        self.consent_enforcement_delay_seconds = Histogram(
            f"{PREFIX}_consent_enforcement_delay_seconds",
            "Consent withdrawal stored to a worker deciding with it, in seconds; observed "
            "once per withdrawal, by the worker owning its designated ingress partition.",
            registry=registry,
            buckets=CONSENT_ENFORCEMENT_BUCKETS,
        )
        self.last_event_timestamp_seconds = Gauge(
            f"{PREFIX}_last_event_timestamp_seconds",
            "Publisher's published-at (its own clock) of the newest admitted event per "
            "publisher and type, as Unix time.",
            ["publisher", "event_type"],
            registry=registry,
        )
        self.ingress_consumer_lag_messages = Gauge(
            f"{PREFIX}_ingress_consumer_lag_messages",
            "Messages between the committed offset and the end of an ingress partition "
            "owned by this worker.",
            ["topic", "partition"],
            registry=registry,
        )
        self.ingress_partition_stalled_seconds = Gauge(
            f"{PREFIX}_ingress_partition_stalled_seconds",
            "Seconds an owned ingress partition with lag has made no progress; 0 while it "
            "progresses or is caught up.",
            ["topic", "partition"],
            registry=registry,
        )
        self.governance_state_version = Gauge(
            f"{PREFIX}_governance_state_version",
            "Version of the governance state (partners, agreements, consents) in use.",
            registry=registry,
        )
        self.governance_state_updated_timestamp_seconds = Gauge(
            f"{PREFIX}_governance_state_updated_timestamp_seconds",
            "Unix time the governance state in use was last changed.",
            registry=registry,
        )
        self.active_agreements = Gauge(
            f"{PREFIX}_active_agreements",
            "Data-sharing agreements currently in force.",
            registry=registry,
        )
        self.consents_active = Gauge(
            f"{PREFIX}_consents_active",
            "Consents currently given and not withdrawn or expired, per controller.",
            ["controller"],
            registry=registry,
        )

    @contextlib.contextmanager
    def update(self) -> Iterator[None]:
        """Hold while changing several series that make one fact: a
        :class:`ConsistentRegistry` collects only before or after."""
        if self._update_lock is None:
            yield
            return
        with self._update_lock:
            yield

    def declare_series(self, declared: DeclaredSeries) -> None:
        """Create every label set of ``declared`` at 0 and remove those declared before
        but not now (a partner or agreement gone); series born from traffic alone stay."""
        label_sets = declared.label_sets()
        # A publisher gone takes its freshness series along (never declared at 0: a
        # zero timestamp would read as data fifty years old).
        gone_publishers = (
            self._declared.get("events_admitted", set()) - label_sets["events_admitted"]
        )
        with self.update():
            for attribute, wanted in label_sets.items():
                metric: MetricWrapperBase = getattr(self, attribute)
                before = self._declared.get(attribute, set())
                for labels in before - wanted:
                    with contextlib.suppress(KeyError):
                        metric.remove(*labels)
                for labels in wanted - before:
                    metric.labels(*labels)
                self._declared[attribute] = wanted
            for labels in gone_publishers:
                with contextlib.suppress(KeyError):
                    self.last_event_timestamp_seconds.remove(*labels)

    def record_delivered(self, subscriber: str, event_type: str) -> None:
        """Count one admitted event delivered to ``subscriber`` (subscriber-side counters)."""
        with self.update():
            self.subscriber_events_received.labels(subscriber, event_type).inc()
            self.events_delivered.labels(subscriber, event_type).inc()

    def record_withheld(self, subscriber: str, event_type: str, reason: str) -> None:
        """Count one admitted event withheld from ``subscriber``; ``reason`` from a closed set."""
        with self.update():
            self.subscriber_events_received.labels(subscriber, event_type).inc()
            self.events_withheld.labels(subscriber, event_type, reason).inc()

    def record_quarantined(
        self,
        publisher: str,
        event_type: str,
        reason: str,
        candidate_subscribers: Iterable[str],
    ) -> None:
        """Count one quarantined input message: received and quarantined once in total,
        and once per candidate subscriber."""
        with self.update():
            self.events_received.labels(publisher, event_type).inc()
            self.events_quarantined.labels(event_type, reason).inc()
            for subscriber in candidate_subscribers:
                self.subscriber_events_received.labels(subscriber, event_type).inc()
                self.subscriber_quarantined.labels(subscriber, event_type).inc()

    def set_partition_stalled(self, topic: str, partition: int, seconds: float) -> None:
        """Report how long an owned partition with lag has not moved (0 when it moves)."""
        self.ingress_partition_stalled_seconds.labels(topic, str(partition)).set(seconds)

    def set_consumer_lag(self, topic: str, partition: int, lag_messages: int) -> None:
        """Report the lag of an ingress partition this worker owns."""
        self.ingress_consumer_lag_messages.labels(topic, str(partition)).set(lag_messages)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop the lag series of a partition this worker no longer owns (after a rebalance),
        so two workers never report the same partition."""
        with contextlib.suppress(KeyError):
            self.ingress_consumer_lag_messages.remove(topic, str(partition))
        with contextlib.suppress(KeyError):
            self.ingress_partition_stalled_seconds.remove(topic, str(partition))


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


class HttpMetrics:
    """Requests served by an HTTP service.

    ``route`` is the route template (``/partners/{partner_id}``), never the raw path, so
    the label set stays bounded.

    Attributes: ``requests`` [``ecoshare_http_requests_total``]
    {service, method, route, status} and ``request_duration_seconds``
    [``ecoshare_http_request_duration_seconds``] {service, method, route}.
    """

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests served, by route template and status code.",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.request_duration_seconds = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to serve an HTTP request (until the response starts), in seconds.",
            ["service", "method", "route"],
            registry=registry,
            buckets=HTTP_DURATION_BUCKETS,
        )

    def observe(self, method: str, route: str, status: int, duration_seconds: float) -> None:
        """Record one served request."""
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.request_duration_seconds.labels(self.service, method, route).observe(duration_seconds)


def register_build_info(registry: CollectorRegistry, service: str, version: str) -> Gauge:
    """Register ``ecoshare_build_info{service,version} 1`` on ``registry``."""
    build_info = Gauge(
        f"{PREFIX}_build_info",
        "Always 1; labels name the running service and its version.",
        ["service", "version"],
        registry=registry,
    )
    build_info.labels(service, version).set(1)
    return build_info


_SUFFIXES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def series_names(registry: CollectorRegistry) -> frozenset[str]:
    """Every series name ``registry`` can expose, with the ``_total``/``_bucket``/...
    suffixes, including labelled metrics that have no labelled child yet."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(
            f"{family.name}{suffix}" for suffix in _SUFFIXES_BY_TYPE.get(family.type, ("",))
        )
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


def start_metrics_server(
    registry: CollectorRegistry, host: str, port: int
) -> tuple[WSGIServer, int]:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    ``port`` 0 picks a free port; the port actually bound is returned with the server.
    Stop it with :func:`stop_metrics_server`.
    """
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, int(server.server_address[1])


def stop_metrics_server(server: WSGIServer) -> None:
    """Stop serving and release the port."""
    server.shutdown()
    server.server_close()
