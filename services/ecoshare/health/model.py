"""Ecosystem health: the measures the orchestrator steers by, as a pure model.

:class:`EcosystemHealth` accumulates what the audit trail says (accepted events,
per-subscriber decisions, quarantined messages) and the control plane's agreements and
partners, and answers for any ``now`` it is given. It never reads a clock, never touches
Kafka, and its memory is bounded whatever the traffic.

Definitions (all windows end at ``now``):

- **contributed** (per partner): events the partner published that the platform
  accepted, once per event however many subscribers it went to. Quarantined messages
  are not contributions; they are counted apart.
- **received** (per partner): deliveries to the partner as subscriber, once per
  (event, subscriber).
- **reciprocity ratio**: ``contributed / (contributed + received)`` in ``[0, 1]``; 1 is a
  partner that only gives, 0 one that only takes, 0.5 balanced; undefined (``None``,
  no gauge) for a partner with neither.
- **reported at** of an event: ``min(published_at, decided_at)``. The publisher's own
  timestamp, so a backfill of old events does not look fresh, but never later than the
  platform saw the event, so a publisher clock running ahead cannot keep a silent feed
  looking fresh.
- **freshness**: a stream (publisher, event type) is *stale* when its newest report is
  older than the event type's SLA. A *breach* is counted once per transition from fresh
  to stale, when :meth:`EcosystemHealth.evaluate` (or :meth:`~EcosystemHealth.report`,
  :meth:`~EcosystemHealth.export`) observes it; silence that starts and ends between two
  evaluations is not seen, so the evaluation interval must be well below the shortest
  SLA (the monitor evaluates every few seconds).
- **coverage** of a stream: the share of its known locations (every location id seen
  from that publisher for that event type, at most ``max_locations_per_stream``, least
  recently updated forgotten first) whose newest report is within the event type's SLA.
- **idle agreement**: an agreement in force at ``now`` with no delivery decided in the
  last ``idle_after``.
- **active** publishers / subscribers: partners that contributed / received at least
  one event in the window.

Windowed counts are kept in fixed buckets (``bucket``, one minute by default) keyed by
the time the platform decided (the audit block's ``at_ms``), so memory is bounded by
``window / bucket`` buckets of bounded keys. A count covers every decision in
``[now - window, now]`` and may include up to one bucket of older ones: it never
undercounts. Decisions timed after ``now`` (a worker clock slightly ahead) are counted.
Buckets behind the newest decision recorded are dropped as records arrive, so ``now``
must not be earlier than the decisions already recorded (a live clock never is).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ecoshare.codec.audit_blocks import DecisionRecord, QuarantineRecord
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner
from ecoshare.domain.timestamps import from_epoch_millis, to_epoch_millis
from ecoshare.health.export import ExportedSeries, export_report
from ecoshare.health.observations import AcceptedEvent, DecisionTally, HealthObservation
from ecoshare.health.windowed import CountKey, WindowedCounts

if TYPE_CHECKING:
    from ecoshare.adapters.metrics import HealthMetrics

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_FRESHNESS_SLA",
    "DEFAULT_IDLE_AFTER",
    "DEFAULT_MAX_LOCATIONS_PER_STREAM",
    "DEFAULT_UNLISTED_SLA",
    "DEFAULT_WINDOW",
    "AcceptedEvent",
    "DecisionTally",
    "EcosystemHealth",
    "HealthObservation",
]

DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_BUCKET = timedelta(minutes=1)
DEFAULT_IDLE_AFTER = timedelta(days=1)
# Lockers and pickup capacity change by the minute and carriers route on them, so
# availability must come every quarter of an hour; a store's status changes rarely but
# must be confirmed at least daily.
DEFAULT_FRESHNESS_SLA: Mapping[str, timedelta] = MappingProxyType(
    {
        "LocationAvailability": timedelta(minutes=15),
        "StoreStatusChanged": timedelta(hours=24),
    }
)
DEFAULT_UNLISTED_SLA = timedelta(hours=24)
"""The SLA of an event type that ``freshness_sla`` does not name."""
# PostNL alone had about 3,750 service points; a hundred thousand locations per
# publisher and event type leaves room for lockers while keeping a stream under ~10 MB.
DEFAULT_MAX_LOCATIONS_PER_STREAM = 100_000

# Keys of the windowed counts: (measure, label).
_CONTRIBUTED = "contributed"
_RECEIVED = "received"
_WITHHELD_FROM = "withheld_from"
_QUARANTINED_FROM = "quarantined_from"
_WITHHELD_REASON = "withheld_reason"
_QUARANTINED_REASON = "quarantined_reason"
_AGREEMENT_DELIVERIES = "agreement_deliveries"
_PER_PARTNER = (_CONTRIBUTED, _RECEIVED, _WITHHELD_FROM, _QUARANTINED_FROM)
_UNKNOWN_REASON = "unknown"


@dataclass(slots=True)
class _Stream:
    """Freshness and coverage state of one (publisher, event type)."""

    newest_reported_ms: int
    locations: OrderedDict[str, int] = field(default_factory=OrderedDict)
    forgotten_locations: int = 0
    in_breach: bool = False
    breaches: int = 0


def _millis(duration: timedelta) -> int:
    return duration // timedelta(milliseconds=1)


def _iso(millis: int | None) -> str | None:
    return None if millis is None else from_epoch_millis(millis).isoformat()


class EcosystemHealth:
    """Ecosystem health measures over a trailing window; see the module for definitions.

    Not thread-safe: callers serialise access (the monitor holds a lock).

    Parameters: ``window`` of the windowed counts (contributed, received, withheld,
    quarantined, active partners); ``bucket`` their resolution (``window`` must be a
    whole number of buckets); ``freshness_sla`` per event type, merged over
    :data:`DEFAULT_FRESHNESS_SLA`; ``unlisted_sla`` for other event types; ``idle_after``
    for idle agreements; ``max_locations_per_stream`` bounds coverage memory.
    """

    def __init__(
        self,
        *,
        window: timedelta = DEFAULT_WINDOW,
        bucket: timedelta = DEFAULT_BUCKET,
        freshness_sla: Mapping[str, timedelta] | None = None,
        unlisted_sla: timedelta = DEFAULT_UNLISTED_SLA,
        idle_after: timedelta = DEFAULT_IDLE_AFTER,
        max_locations_per_stream: int = DEFAULT_MAX_LOCATIONS_PER_STREAM,
    ) -> None:
        slas = {**DEFAULT_FRESHNESS_SLA, **(freshness_sla or {})}
        if bucket <= timedelta(0) or window < bucket or window % bucket:
            raise ValueError(
                f"window ({window}) must be a positive whole number of buckets ({bucket})"
            )
        if any(sla <= timedelta(0) for sla in (*slas.values(), unlisted_sla, idle_after)):
            raise ValueError("freshness SLAs and idle_after must be positive")
        if max_locations_per_stream < 1:
            raise ValueError("max_locations_per_stream must be at least 1")
        self._window = window
        self._sla_ms = {event_type: _millis(sla) for event_type, sla in slas.items()}
        self._unlisted_sla_ms = _millis(unlisted_sla)
        self._idle_after_ms = _millis(idle_after)
        self._max_locations = max_locations_per_stream
        self._counts = WindowedCounts(_millis(window), _millis(bucket))
        self._bucket_ms = _millis(bucket)
        self._newest_bucket: int | None = None
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._last_delivery_ms: dict[str, int] = {}
        self._agreements: dict[str, Agreement] = {}
        self._partners: dict[str, Partner] = {}
        self._exported: weakref.WeakKeyDictionary[HealthMetrics, ExportedSeries] = (
            weakref.WeakKeyDictionary()
        )

    # -- input ---------------------------------------------------------------------

    def freshness_sla(self, event_type: str) -> timedelta:
        """The freshness SLA of ``event_type``."""
        return timedelta(milliseconds=self._sla_ms.get(event_type, self._unlisted_sla_ms))

    def set_agreements(self, agreements: Iterable[Agreement]) -> None:
        """Replace the known agreements (the latest version of each, in force or not)."""
        self._agreements = {agreement.agreement_id: agreement for agreement in agreements}

    def set_partners(self, partners: Iterable[Partner]) -> None:
        """Replace the registered partners; they are reported even with no activity."""
        self._partners = {partner.partner_id: partner for partner in partners}

    def record(self, observation: HealthObservation) -> None:
        """Accumulate one observation (in any order; each must be given once)."""
        if isinstance(observation, DecisionTally):
            self.record_tally(observation)
        elif isinstance(observation, DecisionRecord):
            self.record_decision(observation)
        elif isinstance(observation, QuarantineRecord):
            self.record_quarantine(observation)
        else:
            self.record_event(observation)

    def record_all(self, observations: Iterable[HealthObservation]) -> None:
        """:meth:`record` each of ``observations``."""
        for observation in observations:
            self.record(observation)

    def record_event(self, event: AcceptedEvent) -> None:
        """An accepted event: a contribution, and a report for freshness and coverage."""
        self._count((_CONTRIBUTED, event.publisher_id), event.decided_at_ms)
        reported = event.reported_ms
        key = (event.publisher_id, event.event_type)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(reported)
        elif reported > stream.newest_reported_ms:
            stream.newest_reported_ms = reported
        locations = stream.locations
        previous = locations.get(event.location_id)
        if previous is None or reported > previous:
            locations[event.location_id] = reported
            locations.move_to_end(event.location_id)
            if len(locations) > self._max_locations:
                locations.popitem(last=False)
                stream.forgotten_locations += 1

    def record_decision(self, decision: DecisionRecord) -> None:
        """One (event, subscriber) decision: a delivery, or a withholding and its reason."""
        self._decided(
            decision.subscriber_id,
            decision.outcome,
            decision.reason,
            decision.agreement_id,
            decision.decided_at_ms,
            1,
        )

    def record_tally(self, tally: DecisionTally) -> None:
        """``tally.decisions`` alike decisions, as if each were given to :meth:`record_decision`."""
        self._decided(
            tally.subscriber_id,
            tally.outcome,
            tally.reason,
            tally.agreement_id,
            tally.decided_at_ms,
            tally.decisions,
        )

    def _decided(
        self,
        subscriber_id: str,
        outcome: str,
        reason: str | None,
        agreement_id: str | None,
        at_ms: int,
        decisions: int,
    ) -> None:
        if decisions < 1:
            return
        if outcome == "delivered":
            self._count((_RECEIVED, subscriber_id), at_ms, decisions)
            if agreement_id is not None:
                self._count((_AGREEMENT_DELIVERIES, agreement_id), at_ms, decisions)
                if at_ms > self._last_delivery_ms.get(agreement_id, at_ms - 1):
                    self._last_delivery_ms[agreement_id] = at_ms
        else:
            self._count((_WITHHELD_FROM, subscriber_id), at_ms, decisions)
            self._count((_WITHHELD_REASON, reason or _UNKNOWN_REASON), at_ms, decisions)

    def record_quarantine(self, refusal: QuarantineRecord) -> None:
        """One quarantined message: counted by reason and, when known, by publisher."""
        at_ms = refusal.decided_at_ms
        self._count((_QUARANTINED_REASON, refusal.reason), at_ms)
        if refusal.publisher_id:
            self._count((_QUARANTINED_FROM, refusal.publisher_id), at_ms)

    def _count(self, key: CountKey, at_ms: int, amount: int = 1) -> None:
        if self._newest_bucket is None or at_ms // self._bucket_ms > self._newest_bucket:
            self._newest_bucket = at_ms // self._bucket_ms
            # Buckets behind the newest decision seen are dropped while the audit trail is
            # replayed, so memory stays bounded before the first evaluation.
            self._counts.expire(at_ms)
        self._counts.add(key, at_ms, amount)

    # -- evaluation ----------------------------------------------------------------

    def evaluate(self, now: datetime, *, count_breaches: bool = True) -> None:
        """Advance to ``now``: expire old buckets and, with ``count_breaches``, count
        every stream that turned stale since the last evaluation (once per transition).

        Pass ``count_breaches=False`` while the history is still being replayed, when
        streams look stale only because their newer events have not been read yet.
        """
        now_ms = to_epoch_millis(now)
        self._counts.expire(now_ms)
        if count_breaches:
            for (_publisher, event_type), stream in self._streams.items():
                stale = now_ms - stream.newest_reported_ms > self._sla_of(event_type)
                if stale and not stream.in_breach:
                    stream.breaches += 1
                stream.in_breach = stale
        horizon = now_ms - self._idle_after_ms
        for agreement_id in [
            key
            for key, last in self._last_delivery_ms.items()
            if key not in self._agreements and last <= horizon
        ]:
            del self._last_delivery_ms[agreement_id]

    def report(self, now: datetime, *, count_breaches: bool = True) -> dict[str, Any]:
        """:meth:`evaluate` at ``now``, then the whole health picture as a JSON-able dict.

        Sections: ``window`` (parameters), ``totals``, ``partners``, ``coverage``,
        ``freshness``, ``agreements`` (those in force), ``withheld`` and ``quarantined``
        (counts by reason in the window). Lists are sorted by their identifying fields.
        Times are ISO 8601 in UTC; ages and SLAs are seconds; ratios are 0..1.
        """
        self.evaluate(now, count_breaches=count_breaches)
        now_ms = to_epoch_millis(now)
        partners = self._partner_rows()
        freshness, coverage = self._stream_rows(now_ms)
        agreements, not_in_force = self._agreement_rows(now, now_ms)
        withheld = self._reason_rows(_WITHHELD_REASON)
        quarantined = self._reason_rows(_QUARANTINED_REASON)
        totals = {
            "partners": len(partners),
            "active_publishers": sum(1 for row in partners if row["contributed"] > 0),
            "active_subscribers": sum(1 for row in partners if row["received"] > 0),
            "events_contributed": sum(row["contributed"] for row in partners),
            "deliveries": sum(row["received"] for row in partners),
            "withheld": sum(row["events"] for row in withheld),
            "quarantined": sum(row["events"] for row in quarantined),
            "streams": len(freshness),
            "stale_streams": sum(1 for row in freshness if row["stale"]),
            "freshness_breaches": sum(row["breaches"] for row in freshness),
            "agreements_in_force": len(agreements),
            "agreements_not_in_force": not_in_force,
            "idle_agreements": sum(1 for row in agreements if row["idle"]),
        }
        return {
            "generated_at": now.isoformat(),
            "window": {
                "window_seconds": self._window.total_seconds(),
                "idle_after_seconds": self._idle_after_ms / 1000,
                "freshness_sla_seconds": {
                    event_type: sla / 1000 for event_type, sla in sorted(self._sla_ms.items())
                },
            },
            "totals": totals,
            "partners": partners,
            "coverage": coverage,
            "freshness": freshness,
            "agreements": agreements,
            "withheld": withheld,
            "quarantined": quarantined,
        }

    def export(self, metrics: HealthMetrics, now: datetime) -> dict[str, Any]:
        """:meth:`report` at ``now`` and set ``metrics`` from it; returns the report.

        Series of partners that left the report and of agreements no longer in force
        are removed; a partner's reciprocity series exists only while it is defined.
        The breach counter is incremented by the breaches counted since the previous
        export to the same ``metrics`` and has a (zero) series for every stream.
        """
        body = self.report(now)
        export_report(body, metrics, self._exported.setdefault(metrics, ExportedSeries()))
        return body

    # -- report sections -----------------------------------------------------------

    def _sla_of(self, event_type: str) -> int:
        return self._sla_ms.get(event_type, self._unlisted_sla_ms)

    def _partner_rows(self) -> list[dict[str, Any]]:
        totals = self._counts.totals
        ids = set(self._partners)
        ids.update(label for measure, label in totals if measure in _PER_PARTNER)
        rows: list[dict[str, Any]] = []
        for partner_id in sorted(ids):
            partner = self._partners.get(partner_id)
            contributed = totals[(_CONTRIBUTED, partner_id)]
            received = totals[(_RECEIVED, partner_id)]
            both = contributed + received
            rows.append(
                {
                    "partner": partner_id,
                    "name": partner.name if partner is not None else None,
                    "registered": partner is not None,
                    "enabled": partner.enabled if partner is not None else None,
                    "contributed": contributed,
                    "received": received,
                    "withheld": totals[(_WITHHELD_FROM, partner_id)],
                    "quarantined": totals[(_QUARANTINED_FROM, partner_id)],
                    "reciprocity_ratio": contributed / both if both else None,
                }
            )
        return rows

    def _stream_rows(self, now_ms: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        freshness: list[dict[str, Any]] = []
        coverage: list[dict[str, Any]] = []
        for (publisher, event_type), stream in sorted(self._streams.items()):
            sla_ms = self._sla_of(event_type)
            age_ms = max(0, now_ms - stream.newest_reported_ms)
            freshness.append(
                {
                    "publisher": publisher,
                    "event_type": event_type,
                    "last_reported_at": _iso(stream.newest_reported_ms),
                    "age_seconds": age_ms / 1000,
                    "sla_seconds": sla_ms / 1000,
                    "stale": age_ms > sla_ms,
                    "breaches": stream.breaches,
                }
            )
            known = len(stream.locations)
            fresh = sum(1 for at in stream.locations.values() if now_ms - at <= sla_ms)
            coverage.append(
                {
                    "publisher": publisher,
                    "event_type": event_type,
                    "known_locations": known,
                    "fresh_locations": fresh,
                    "forgotten_locations": stream.forgotten_locations,
                    "coverage_ratio": fresh / known if known else 0.0,
                }
            )
        return freshness, coverage

    def _agreement_rows(self, now: datetime, now_ms: int) -> tuple[list[dict[str, Any]], int]:
        totals = self._counts.totals
        rows: list[dict[str, Any]] = []
        not_in_force = 0
        for agreement_id in sorted(self._agreements):
            agreement = self._agreements[agreement_id]
            if not agreement.is_in_force(now):
                not_in_force += 1
                continue
            last = self._last_delivery_ms.get(agreement_id)
            rows.append(
                {
                    "agreement_id": agreement_id,
                    "version": agreement.version,
                    "subscriber": agreement.subscriber,
                    "publishers": sorted(agreement.publishers),
                    "event_types": sorted(agreement.event_types),
                    "deliveries": totals[(_AGREEMENT_DELIVERIES, agreement_id)],
                    "last_delivered_at": _iso(last),
                    "idle": last is None or last <= now_ms - self._idle_after_ms,
                }
            )
        return rows, not_in_force

    def _reason_rows(self, measure: str) -> list[dict[str, Any]]:
        found = [
            (label, amount)
            for (kind, label), amount in self._counts.totals.items()
            if kind == measure
        ]
        return [{"reason": reason, "events": amount} for reason, amount in sorted(found)]
