"""The governance workers' metrics.

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
  :class:`.ConsistentRegistry` takes the same lock to collect, so no scrape sees half a
  batch;
- :meth:`GovernanceMetrics.declare_series` creates every label set knowable in advance
  at 0 (``rate()`` and ``increase()`` miss the first value of a series, so a series born
  holding a batch under-counts by that batch forever) and removes the ones no longer
  known.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from ecoshare.adapters.metrics.exposition import PREFIX

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
        self.ingress_partitions_owned = Gauge(
            f"{PREFIX}_ingress_partitions_owned",
            "Ingress partitions this worker owns now (its share of the group's assignment).",
            ["topic"],
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
        :class:`.ConsistentRegistry` collects only before or after."""
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

    def set_partition_stalled(self, topic: str, partition: int, seconds: float) -> None:
        """Report how long an owned partition with lag has not moved (0 when it moves)."""
        self.ingress_partition_stalled_seconds.labels(topic, str(partition)).set(seconds)

    def set_consumer_lag(self, topic: str, partition: int, lag_messages: int) -> None:
        """Report the lag of an ingress partition this worker owns."""
        self.ingress_consumer_lag_messages.labels(topic, str(partition)).set(lag_messages)

    def set_partitions_owned(self, topic: str, count: int) -> None:
        """Report how many partitions of ingress ``topic`` this worker owns."""
        self.ingress_partitions_owned.labels(topic).set(count)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop the lag series of a partition this worker no longer owns (after a rebalance),
        so two workers never report the same partition."""
        with contextlib.suppress(KeyError):
            self.ingress_consumer_lag_messages.remove(topic, str(partition))
        with contextlib.suppress(KeyError):
            self.ingress_partition_stalled_seconds.remove(topic, str(partition))
