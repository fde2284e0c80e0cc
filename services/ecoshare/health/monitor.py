"""The health monitor: follows the audit trail and the control plane, keeps the gauges set.

Why followers (confluent-kafka, in a thread) rather than a Faust app with timers and
tables: the monitor must read the audit topic *from its beginning on every start*, with
no consumer group and no commits (it is a read-only observer, and any number of API
processes may run one), and it must know when it has caught up, which partition EOF
tells reliably (ListOffsets under-reports on the embedded broker). Faust always joins a
group, commits offsets and keeps tables in changelog topics of its own, none of which
the monitor wants; its timers would also need an event loop inside the API process.
The model's state is rebuilt from the audit trail on start, so nothing needs a changelog.

The monitor is a fold (:class:`HealthFold`) of
:class:`~ecoshare.adapters.kafka.follower.TopicFollower`: inside the API it is fed by
the API's own followers (the audit follower the audit index also reads), and on its own
(the demo) it runs one follower of the topics it needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from ecoshare.adapters.kafka.control_records import ValidRecords
from ecoshare.adapters.kafka.follower import TopicFollower
from ecoshare.adapters.metrics import HealthMetrics
from ecoshare.codec.audit_blocks import AuditFormatError
from ecoshare.config.topics import TopicNames
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner
from ecoshare.health.feed import audit_observations
from ecoshare.health.model import DEFAULT_WINDOW, EcosystemHealth

__all__ = ["HealthFold", "HealthMonitor"]

log = logging.getLogger(__name__)

_EXPORT_TICK_SECONDS = 0.1


class HealthFold:
    """Feeds :class:`EcosystemHealth` from the audit, agreements and partners topics.

    A follower fold: records of other topics are ignored, so it may be added to a
    follower that follows more. Control records are decoded by the platform's one rule
    (:class:`~ecoshare.adapters.kafka.control_records.ValidRecords`: an invalid record
    leaves the previous valid one in force, and is counted). Thread-safe.
    """

    def __init__(self, names: TopicNames, model: EcosystemHealth) -> None:
        self._names = names
        self.model = model
        self.lock = threading.Lock()
        self.agreements = ValidRecords(Agreement, topic=names.agreements)
        self.partners = ValidRecords(Partner, topic=names.partners)
        self.audit_messages = 0
        self.undecodable_audit_messages = 0

    def apply(self, message: Any) -> None:
        topic = message.topic()
        if topic == self._names.audit:
            self._apply_audit(message)
        elif topic == self._names.agreements:
            with self.lock:
                if self.agreements.apply_message(message):
                    self.model.set_agreements(self.agreements.valid.values())
        elif topic == self._names.partners:
            with self.lock:
                if self.partners.apply_message(message):
                    self.model.set_partners(self.partners.valid.values())

    def _apply_audit(self, message: Any) -> None:
        # Decoded before the lock is taken, so report() waits only for the model's
        # bookkeeping, not for JSON parsing.
        try:
            observations = audit_observations(message.value())
        except AuditFormatError as exc:
            log.warning(
                "audit message at %s@%s skipped: %s", message.topic(), message.offset(), exc
            )
            observations = None
        with self.lock:
            self.audit_messages += 1
            if observations is None:
                self.undecodable_audit_messages += 1
            else:
                self.model.record_all(observations)


class HealthMonitor:
    """Continuously computed ecosystem health, exported as :class:`HealthMetrics`.

    Reads every partition of the audit topic and of the agreements and partners control
    topics from the beginning, feeds :class:`~ecoshare.health.model.EcosystemHealth`,
    and once every partition has been read to its end sets the gauges on ``registry``
    every ``refresh_seconds``. Breaches are only counted once caught up, so replaying
    old history never counts one.

    ``followers``, when given, are followers (not started yet) that between them follow
    those three topics; the monitor adds its fold to each and their owner starts and
    stops them. Without them the monitor runs its own follower, which waits for the
    topics to exist, so it can start before the platform has created them.

    ``freshness_sla`` overrides the default SLA of the event types it names. ``clock``
    returns Unix seconds; it exists for tests. :meth:`report` is thread-safe.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        names: TopicNames,
        registry: CollectorRegistry,
        *,
        followers: Iterable[TopicFollower] | None = None,
        freshness_sla: Mapping[str, timedelta] | None = None,
        refresh_seconds: float = 5.0,
        window: timedelta = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if refresh_seconds <= 0:
            raise ValueError("refresh_seconds must be positive")
        self._metrics = HealthMetrics(registry)
        self._fold = HealthFold(names, EcosystemHealth(freshness_sla=freshness_sla, window=window))
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._exported_at: datetime | None = None
        self._first_export = threading.Event()
        if followers is None:
            own = TopicFollower(
                bootstrap_servers,
                [names.audit, names.agreements, names.partners],
                name="health",
                read_committed=True,
                wait_for_topics=True,
                batch_messages=1000,
            )
            self._followers = [own]
            self._own_follower: TopicFollower | None = own
        else:
            self._followers = list(followers)
            self._own_follower = None
        for follower in self._followers:
            follower.add_fold(self._fold)

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start following (its own follower) and exporting; returns at once."""
        if self._thread is not None:
            raise RuntimeError("the health monitor was already started")
        if self._own_follower is not None:
            self._own_follower.start()
        self._thread = threading.Thread(
            target=self._export_loop, name="ecoshare-health-export", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop exporting, and its own follower (waits up to ``timeout_seconds``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
        if self._own_follower is not None:
            self._own_follower.stop(timeout_seconds)

    def __enter__(self) -> HealthMonitor:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def caught_up(self) -> bool:
        """True once every partition followed has been read to its end at least once
        and the gauges were set from that state (so a scrape never sees them half set)."""
        return self._first_export.is_set()

    def _history_read(self) -> bool:
        return all(follower.caught_up for follower in self._followers)

    def wait_until_caught_up(self, timeout_seconds: float) -> bool:
        """Block until :attr:`caught_up` or ``timeout_seconds`` pass; return :attr:`caught_up`."""
        return self._first_export.wait(timeout_seconds)

    # -- reading -------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The health report now (see :meth:`EcosystemHealth.report`) plus ``status``:
        whether the history has been read to its end, messages read, records refused
        and the last error. Thread-safe; before catching up the figures are partial.
        """
        caught_up = self._history_read()
        pending = [follower.partitions_to_catch_up() for follower in self._followers]
        errors = [
            follower.failure or follower.last_error
            for follower in self._followers
            if follower.failure or follower.last_error
        ]
        fold = self._fold
        with fold.lock:
            body = fold.model.report(self._now(), count_breaches=caught_up)
            body["status"] = {
                "caught_up": caught_up,
                "following": all(count is not None for count in pending),
                "partitions_to_catch_up": (
                    None if any(count is None for count in pending) else sum(pending)
                ),
                "audit_messages": fold.audit_messages,
                "undecodable_audit_messages": fold.undecodable_audit_messages,
                "invalid_control_records": fold.agreements.invalid + fold.partners.invalid,
                "metrics_exported_at": (
                    None if self._exported_at is None else self._exported_at.isoformat()
                ),
                "last_error": errors[0] if errors else None,
            }
        return body

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # -- exporting -----------------------------------------------------------------

    def _export_loop(self) -> None:
        next_export = time.monotonic()
        while not self._stopping.wait(min(_EXPORT_TICK_SECONDS, self._refresh_seconds)):
            if not self._history_read() or time.monotonic() < next_export:
                continue
            try:
                with self._fold.lock:
                    self._exported_at = self._now()
                    self._fold.model.export(self._metrics, self._exported_at)
            except Exception:  # a failed export must not stop the next ones
                log.exception("the health gauges could not be exported")
            self._first_export.set()
            next_export = time.monotonic() + self._refresh_seconds
