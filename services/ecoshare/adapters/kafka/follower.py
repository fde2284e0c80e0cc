"""The one way to follow topics continuously: :class:`TopicFollower`.

A follower reads every partition of its topics from the beginning in a daemon thread
(``assign()``: no group joined, nothing committed, any number of processes may follow
the same topics) and hands each record, in partition order, to its folds (state kept
from the records) and then to its listeners (reactions to them).

Caught up means one thing everywhere: the fetch answer said "end of partition"
(``enable.partition.eof``). Watermarks are never asked for, because the embedded broker
under-reports them (ListOffsets) after multi-record batches, while the end a fetch
answer carries is exact on every broker the platform runs on.

- :attr:`TopicFollower.caught_up`: every partition reached its end at least once since
  the follower started (history replayed).
- :meth:`TopicFollower.catch_up`: read-your-writes across processes. The follower seeks
  every partition to its own position, which starts a new fetch and so a new
  end-of-partition report; once every partition has reported its end after the call,
  everything acknowledged before the call has been applied. Concurrent calls share
  rounds: one round answers every call made before it started.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from ecoshare.adapters.kafka.config import reader_config
from ecoshare.adapters.kafka.errors import TopicMissingError

__all__ = ["ConsumerLike", "Fold", "Listener", "Position", "TopicFollower"]

log = logging.getLogger(__name__)

Position = tuple[str, int]
"""(topic, partition)."""

_DISCOVERY_RETRY_SECONDS = 0.5


class ConsumerLike(Protocol):
    """The part of confluent-kafka's Consumer a follower uses (a fake in unit tests)."""

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...

    def close(self) -> None: ...


class Fold(Protocol):
    """State kept from a followed topic's records; ``apply`` runs in the follower thread,
    one record at a time in partition order, before any listener sees the record."""

    def apply(self, message: Any) -> None: ...


Listener = Callable[[Any], None]
"""Called in the follower thread with each record, after every fold has applied it."""


class TopicFollower:
    """Follows ``topics`` from their beginning and keeps its folds applied; see the module.

    Add folds and listeners before :meth:`start`. With ``wait_for_topics`` the thread
    waits for missing topics to be created; otherwise :meth:`start` raises
    TopicMissingError. ``read_committed`` is for topics a transaction may write
    (governed output). A fold or listener that raises is logged and counted, and the
    follower goes on: one bad reaction must not stop the state every reader shares.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Iterable[str],
        *,
        name: str,
        read_committed: bool,
        wait_for_topics: bool = False,
        batch_messages: int = 500,
        poll_seconds: float = 0.1,
        fetch_wait_max_ms: int = 20,
        consumer_factory: Callable[[dict[str, Any]], ConsumerLike] = Consumer,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self._config = reader_config(
            bootstrap_servers,
            f"{name}-follower",
            read_committed=read_committed,
            fetch_wait_max_ms=fetch_wait_max_ms,
        )
        self._wait_for_topics = wait_for_topics
        self._batch_messages = batch_messages
        self._poll_seconds = poll_seconds
        self._consumer_factory = consumer_factory
        self._folds: list[Fold] = []
        self._listeners: list[Listener] = []
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: ConsumerLike | None = None
        # Guarded by _condition:
        self._partitions: list[Position] | None = None
        self._positions: dict[Position, int] = {}
        self._reached_end: set[Position] = set()
        self._requested_round = 0
        self._serving_round = 0
        self._completed_round = 0
        self._round_pending: set[Position] = set()
        self.messages = 0
        self.reaction_failures = 0
        self.last_error: str | None = None
        self.failure: str | None = None

    # -- set-up and life cycle -----------------------------------------------------------

    def add_fold(self, fold: Fold) -> None:
        self._require_not_started()
        self._folds.append(fold)

    def add_listener(self, listener: Listener) -> None:
        self._require_not_started()
        self._listeners.append(listener)

    def _require_not_started(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} follower is already running")

    def start(self, *, timeout_seconds: float = 15.0) -> TopicFollower:
        """Start the thread; returns at once (see :meth:`catch_up` to wait).

        Raises TopicMissingError (unless ``wait_for_topics``) when a topic is missing.
        """
        self._require_not_started()
        consumer = self._consumer_factory(self._config)
        self._consumer = consumer
        if not self._wait_for_topics:
            try:
                partitions = self._discover(consumer, timeout_seconds)
            except (KafkaException, TopicMissingError):
                with contextlib.suppress(KafkaException, RuntimeError):
                    consumer.close()
                raise
            if partitions is None:
                with contextlib.suppress(KafkaException, RuntimeError):
                    consumer.close()
                raise TopicMissingError(f"{self.name}: a topic of {self.topics} does not exist")
            self._assign(consumer, partitions)
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name=f"{self.name}-follower", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def __enter__(self) -> TopicFollower:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- what callers wait for -----------------------------------------------------------

    @property
    def caught_up(self) -> bool:
        """Every partition has reached its end at least once since :meth:`start`."""
        with self._condition:
            return self._history_read()

    def _history_read(self) -> bool:
        partitions = self._partitions
        return partitions is not None and self._reached_end.issuperset(partitions)

    def partitions_to_catch_up(self) -> int | None:
        """Partitions whose end was never reached yet; None before the topics are found."""
        with self._condition:
            if self._partitions is None:
                return None
            return len(set(self._partitions) - self._reached_end)

    def wait_until_caught_up(self, timeout_seconds: float) -> bool:
        """Block until :attr:`caught_up` or ``timeout_seconds`` pass; return it."""
        deadline = time.monotonic() + timeout_seconds
        with self._condition:
            while not self._history_read():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped():
                    return False
                self._condition.wait(min(remaining, 0.1))
        return True

    def catch_up(self, timeout_seconds: float = 5.0) -> bool:
        """Wait until every partition reported its end after this call; False on timeout
        or when the follower has stopped. Everything acknowledged by the cluster before
        the call has then been applied by every fold."""
        deadline = time.monotonic() + timeout_seconds
        with self._condition:
            if self._thread is None or self._stopped():
                return False
            self._requested_round += 1
            target = self._requested_round
            while self._completed_round < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped():
                    return False
                self._condition.wait(min(remaining, 0.1))
        return True

    def wait_for(self, position: Position, offset: int, timeout_seconds: float = 5.0) -> bool:
        """Wait until the record at ``offset`` of ``position`` has been applied (a
        record this process wrote); False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        with self._condition:
            while self._positions.get(position, 0) <= offset:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped():
                    return False
                self._condition.wait(min(remaining, 0.1))
        return True

    def _stopped(self) -> bool:
        return self._stopping.is_set() or self.failure is not None

    # -- the thread ----------------------------------------------------------------------

    def _discover(self, consumer: ConsumerLike, timeout_seconds: float) -> list[Position] | None:
        """Every partition of the topics, or None when one of them does not exist yet.

        Listing all topics, rather than asking for the wanted ones by name, never makes
        a broker auto-create a topic the platform has not created yet.
        """
        existing = consumer.list_topics(timeout=timeout_seconds).topics
        found: list[Position] = []
        for topic in self.topics:
            metadata = existing.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                if self._wait_for_topics:
                    return None
                raise TopicMissingError(f"topic {topic!r} does not exist")
            found.extend((topic, partition) for partition in sorted(metadata.partitions))
        return found

    def _assign(self, consumer: ConsumerLike, partitions: list[Position]) -> None:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
        with self._condition:
            self._partitions = partitions
            self._condition.notify_all()

    def _wait_for_partitions(self, consumer: ConsumerLike) -> bool:
        while not self._stopping.is_set():
            try:
                partitions = self._discover(consumer, 5.0)
            except KafkaException as exc:
                self._note_error(f"metadata request failed: {exc}")
                partitions = None
            if partitions is not None:
                self._assign(consumer, partitions)
                return True
            self._stopping.wait(_DISCOVERY_RETRY_SECONDS)
        return False

    def _run(self, consumer: ConsumerLike) -> None:
        try:
            if self._partitions is None and not self._wait_for_partitions(consumer):
                return
            while not self._stopping.is_set():
                self._start_requested_round(consumer)
                try:
                    messages = consumer.consume(self._batch_messages, self._poll_seconds)
                except KafkaException as exc:
                    self._note_error(f"consume failed: {exc}")
                    continue
                for message in messages:
                    self._take(message)
        except Exception as exc:  # a dead follower must say why, and wake its waiters
            log.exception("the %s follower stopped", self.name)
            with self._condition:
                self.failure = f"{type(exc).__name__}: {exc}"
                self._condition.notify_all()
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()

    def _start_requested_round(self, consumer: ConsumerLike) -> None:
        with self._condition:
            if self._requested_round == self._serving_round or self._partitions is None:
                return
            if self._completed_round < self._serving_round:
                # A round is under way: requests made since wait for the next one (its
                # seek came before them). Restarting it would starve every waiter when
                # requests come faster than a round completes.
                return
            self._serving_round = self._requested_round
            self._round_pending = set(self._partitions)
            if not self._round_pending:
                self._completed_round = self._serving_round
                self._condition.notify_all()
                return
            seeks = [
                TopicPartition(t, p, self._positions.get((t, p), OFFSET_BEGINNING))
                for t, p in self._round_pending
            ]
        for partition in seeks:
            # A seek restarts fetching, so the next end-of-partition report answers a
            # fetch sent after the request. A partition not fetching yet cannot be
            # sought, and its first fetch is after the request anyway.
            with contextlib.suppress(KafkaException):
                consumer.seek(partition)

    def _take(self, message: Any) -> None:
        position = (str(message.topic()), int(message.partition() or 0))
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._reached(position)
            elif error.fatal():
                raise KafkaException(error)
            else:
                self._note_error(f"reading {position[0]}[{position[1]}]: {error}")
            return
        for fold in self._folds:
            self._react(fold.apply, message)
        with self._condition:
            self._positions[position] = int(message.offset() or 0) + 1
            self.messages += 1
            self._condition.notify_all()
        for listener in self._listeners:
            self._react(listener, message)

    def _react(self, reaction: Callable[[Any], None], message: Any) -> None:
        try:
            reaction(message)
        except Exception:
            self.reaction_failures += 1
            log.exception(
                "%s follower: a reaction to %s[%s]@%s failed",
                self.name,
                message.topic(),
                message.partition(),
                message.offset(),
            )

    def _reached(self, position: Position) -> None:
        with self._condition:
            self._reached_end.add(position)
            if self._round_pending:
                self._round_pending.discard(position)
                if not self._round_pending:
                    self._completed_round = self._serving_round
            self._condition.notify_all()

    def _note_error(self, text: str) -> None:
        log.warning("%s follower: %s", self.name, text)
        with self._condition:
            self.last_error = text
