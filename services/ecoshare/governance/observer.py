"""What a governance worker reports to Prometheus, kept out of its hot loop.

The worker calls a :class:`WorkerObserver` at four points: the state it decides with
(every loop turn; cheap when unchanged), partitions assigned and revoked, the lag of an
owned partition, and a batch acknowledged and committed. The observer turns those into
:class:`~ecoshare.adapters.metrics.GovernanceMetrics` updates.

Consent enforcement is observed once per withdrawal, not once per worker: every worker
applies the same compacted control topics through the same code, so one worker's delay
is a faithful sample of the platform's, and observing it on every worker would make the
count and the quantiles depend on how many workers run. The observing worker is the
owner of the withdrawal's *designated partition* — ``crc32(consent_id) mod partitions``
of the first ingress topic — which moves with the partition on a rebalance. A
withdrawal stored while that partition has no owner (mid-rebalance) goes unobserved;
one whose partition moves between two workers' pick-up of it can be observed twice.
Workers deciding with different states for long are the subject of the
``EcoshareGovernanceStateDiverged`` alert, not of this histogram.
"""

from __future__ import annotations

import logging
import time
import zlib
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ecoshare.adapters.metrics import DeclaredSeries, GovernanceMetrics
from ecoshare.config.topics import TopicNames
from ecoshare.domain.policy import WithholdReason
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.engine import UNKNOWN_PUBLISHER, BatchCounts, QuarantineReason

log = logging.getLogger(__name__)
STALL_WARNING_SECONDS = 30.0


class PartitionStallWatch:
    """How long each ingress partition has had lag without its position moving.
    ``clock`` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (topic, partition) -> (position last seen, clock when it last moved)
        self._seen: dict[tuple[str, int], tuple[int, float]] = {}

    def stalled_seconds(self, source: tuple[str, int], position: int, lag: int) -> float:
        """Seconds ``source`` has had lag at ``position`` (0 when it moved or has none)."""
        now = self._clock()
        seen = self._seen.get(source)
        if seen is None or seen[0] != position or lag == 0:
            self._seen[source] = (position, now)
            return 0.0
        return now - seen[1]

    def forget(self, source: tuple[str, int]) -> None:
        self._seen.pop(source, None)


def observe_all(histogram: Any, values: Sequence[float]) -> None:
    """``histogram.observe`` of every value, as one update per bucket: a batch's
    deliveries cost one increment per bucket they fall in, not a locked call each.
    Falls back to one observation per value where the client's histogram differs."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bucket with value <= bound
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    total.inc(sum(values))


def declared_series(state: GovernanceState, event_types: tuple[str, ...]) -> DeclaredSeries:
    """The governance counters' label sets that ``state`` and the catalog make knowable:
    publishers are every partner (a signed event of a partner without the publisher
    role is received under its id before it is quarantined as ``publisher_not_allowed``),
    subscribers the candidate subscribers of each event type, reasons the closed
    vocabularies."""
    return DeclaredSeries(
        event_types=event_types,
        publishers=frozenset(state.partners),
        subscribers_by_type={
            event_type: tuple(state.candidate_subscribers(event_type)) for event_type in event_types
        },
        withhold_reasons=tuple(reason.value for reason in WithholdReason),
        quarantine_reasons=tuple(reason.value for reason in QuarantineReason),
        unknown_publisher=UNKNOWN_PUBLISHER,
    )


def designated_partition(consent_id: str, partitions: int) -> int:
    """The ingress partition whose owner observes ``consent_id``'s withdrawal; stable
    across processes and restarts (unlike ``hash``)."""
    return zlib.crc32(consent_id.encode()) % partitions


class WorkerObserver:
    """Maps one worker's life to its metrics. ``clock`` returns Unix seconds."""

    def __init__(
        self,
        metrics: GovernanceMetrics,
        *,
        names: TopicNames,
        event_types: tuple[str, ...],
        ingress_partitions: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self._event_types = event_types
        self._partitions = ingress_partitions
        self._designated_topic = names.ingress(min(event_types)) if event_types else ""
        self._clock = clock
        self._state: GovernanceState | None = None
        self._owned: set[tuple[str, int]] = set()
        self._withdrawals_seen: set[str] = set()
        self._consent_controllers: set[str] = set()
        self.consent_enforcement_delays: list[float] = []

    # -- state -----------------------------------------------------------------------

    def state_in_force(self, state: GovernanceState) -> None:
        """The worker decides with ``state`` from now on. Declares the series it makes
        knowable and observes the withdrawals it brings. Cheap when ``state`` is the one
        seen last."""
        if state is self._state:
            return
        first = self._state is None
        self._state = state
        self.metrics.declare_series(declared_series(state, self._event_types))
        self.metrics.governance_state_updated_timestamp_seconds.set(self._clock())
        self._observe_withdrawals(state, predate_worker=first)

    def _observe_withdrawals(self, state: GovernanceState, *, predate_worker: bool) -> None:
        now = datetime.fromtimestamp(self._clock(), UTC)
        for consent in state.consents:
            withdrawn_at = consent.withdrawn_at
            if withdrawn_at is None or consent.consent_id in self._withdrawals_seen:
                continue
            self._withdrawals_seen.add(consent.consent_id)
            # Withdrawals in the worker's first state were enforced before it started.
            if predate_worker or not self._observes(consent.consent_id):
                continue
            delay = max(0.0, (now - withdrawn_at).total_seconds())
            self.consent_enforcement_delays.append(delay)
            self.metrics.consent_enforcement_delay_seconds.observe(delay)

    def _observes(self, consent_id: str) -> bool:
        partition = designated_partition(consent_id, self._partitions)
        return (self._designated_topic, partition) in self._owned

    def report_state_gauges(self, state: GovernanceState) -> None:
        """Agreements in force and active consents per controller, at the clock's now."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        metrics = self.metrics
        metrics.active_agreements.set(
            sum(1 for agreement in state.agreements.values() if agreement.is_in_force(now))
        )
        active: dict[str, int] = {}
        for consent in state.consents:
            if consent.is_active(now):
                active[consent.controller] = active.get(consent.controller, 0) + 1
        for controller in self._consent_controllers - set(active):
            metrics.consents_active.labels(controller).set(0)
        for controller, count in active.items():
            metrics.consents_active.labels(controller).set(count)
        self._consent_controllers |= set(active)

    # -- partitions --------------------------------------------------------------------

    def partition_assigned(self, topic: str, partition: int) -> None:
        self._owned.add((topic, partition))
        self._report_owned(topic)

    def partition_revoked(self, topic: str, partition: int) -> None:
        self._owned.discard((topic, partition))
        self.metrics.forget_partition(topic, partition)
        self._report_owned(topic)

    def _report_owned(self, topic: str) -> None:
        self.metrics.set_partitions_owned(topic, sum(1 for t, _ in self._owned if t == topic))

    def report_lag(self, topic: str, partition: int, lag_messages: int) -> None:
        self.metrics.set_consumer_lag(topic, partition, lag_messages)

    def report_stalled(self, topic: str, partition: int, seconds: float) -> None:
        self.metrics.set_partition_stalled(topic, partition, seconds)

    def report_position(
        self, topic: str, partition: int, position: int, high: int, stalls: PartitionStallWatch
    ) -> None:
        """An owned partition's next offset to process and its high watermark: its lag,
        and how long it has had lag without moving (a warning past 30 s)."""
        lag = max(0, high - position)
        self.report_lag(topic, partition, lag)
        stalled = stalls.stalled_seconds((topic, partition), position, lag)
        if stalled > STALL_WARNING_SECONDS:
            log.warning(
                "%s[%d] has made no progress for %.0f s with %d messages of lag",
                topic,
                partition,
                stalled,
                lag,
            )
        self.report_stalled(topic, partition, stalled)

    # -- batches -----------------------------------------------------------------------

    def batch_completed(
        self, counts: BatchCounts, events: int, seconds: float, acknowledged_at: float
    ) -> None:
        """A batch's outputs are acknowledged (see ``ledger.Outcome``): count it, as one
        update (a scrape sees all of it or none). ``acknowledged_at`` is Unix seconds."""
        metrics = self.metrics
        with metrics.update():
            for (publisher, event_type), count in counts.admitted.items():
                metrics.events_received.labels(publisher, event_type).inc(count)
                metrics.events_admitted.labels(publisher, event_type).inc(count)
            for (publisher, event_type), count in counts.quarantined_publishers.items():
                metrics.events_received.labels(publisher, event_type).inc(count)
            for (event_type, reason), count in counts.quarantined.items():
                metrics.events_quarantined.labels(event_type, reason).inc(count)
            for (subscriber, event_type), count in counts.subscriber_received.items():
                metrics.subscriber_events_received.labels(subscriber, event_type).inc(count)
            for (subscriber, event_type), count in counts.delivered.items():
                metrics.events_delivered.labels(subscriber, event_type).inc(count)
            for (subscriber, event_type, reason), count in counts.withheld.items():
                metrics.events_withheld.labels(subscriber, event_type, reason).inc(count)
            for (subscriber, event_type), count in counts.subscriber_quarantined.items():
                metrics.subscriber_quarantined.labels(subscriber, event_type).inc(count)
            for subscriber, ingested in counts.delivered_ingested_ms.items():
                observe_all(
                    metrics.delivery_latency_seconds.labels(subscriber),
                    [
                        max(0.0, acknowledged_at - ingested_ms / 1000.0)
                        for ingested_ms in ingested
                        if ingested_ms > 0  # 0: the broker gave no timestamp
                    ],
                )
        for (publisher, event_type), published_ms in counts.latest_published_ms.items():
            gauge = metrics.last_event_timestamp_seconds.labels(publisher, event_type)
            gauge.set(max(published_ms / 1000.0, gauge._value.get()))
        metrics.batch_processing_seconds.observe(seconds)
        if events:
            metrics.event_processing_seconds.observe(seconds / events)
