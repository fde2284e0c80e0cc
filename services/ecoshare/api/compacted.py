"""JSON records on compacted topics: a writer, a one-shot reader and a live follower.

The API keeps its own state (API keys, webhooks) the way the control plane keeps
partners, agreements and consents: one compacted topic per kind, the record id as key,
a JSON object as value and ``{"deleted": true}`` as the deletion marker (see
:mod:`ecoshare.governance.control_plane` for why not a null tombstone). Every API
instance follows the same topics, so a key issued by the CLI or a webhook registered on
another instance is known everywhere, and nothing is lost when an API restarts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from ecoshare.errors import EcoshareError
from ecoshare.governance.control_plane import (
    DELETION_MARKER,
    ControlRecordError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
TopicPosition = tuple[str, int]
Written = tuple[TopicPosition, int]
"""Where a record was written: ((topic, partition), offset)."""


class CompactedTopicError(EcoshareError):
    """A compacted topic could not be read or written in time."""


class CompactedTopicWriter:
    """Writes JSON records one at a time, each acknowledged before the call returns.

    Thread-safe: calls are serialised, so each produce request carries one record and
    the returned offset belongs to the caller's record.
    """

    def __init__(self, bootstrap_servers: str, *, timeout_seconds: float = 10.0) -> None:
        self._timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "acks": "all",
                # One record in flight at a time, and rewriting a key's latest value is
                # harmless on a compacted topic: idempotence would only cost its set-up.
                "max.in.flight.requests.per.connection": 1,
                "linger.ms": 0,
                "partitioner": "murmur2_random",
                "log_level": 3,
            }
        )

    def put(self, topic: str, key: str, value: Mapping[str, Any]) -> Written:
        """Write ``value`` under ``key``; the (topic, partition) and offset written."""
        if value.get("deleted") is True:
            raise ControlRecordError(f'a value with "deleted": true would delete {key!r}')
        return self._produce(topic, key, encode_value(value))

    def delete(self, topic: str, key: str) -> Written:
        """Write the deletion marker for ``key``."""
        return self._produce(topic, key, encode_value(DELETION_MARKER))

    def _produce(self, topic: str, key: str, value: bytes) -> Written:
        outcome: list[tuple[KafkaError | None, int, int]] = []

        def on_delivery(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                outcome.append((error, -1, -1))
            else:
                outcome.append((None, int(message.partition()), int(message.offset())))

        with self._lock:
            try:
                self._producer.produce(
                    topic, key=encode_key(key), value=value, on_delivery=on_delivery
                )
            except (KafkaException, BufferError) as exc:
                raise CompactedTopicError(f"could not write {key!r} to {topic}: {exc}") from exc
            remaining = self._producer.flush(self._timeout_seconds)
        if remaining or not outcome:
            raise CompactedTopicError(
                f"{key!r} was not acknowledged by {topic} within {self._timeout_seconds:.0f}s"
            )
        error, partition, offset = outcome[0]
        if error is not None:
            raise CompactedTopicError(f"could not write {key!r} to {topic}: {error}")
        return (topic, partition), offset

    def close(self) -> None:
        with self._lock:
            self._producer.flush(self._timeout_seconds)


def _consumer(bootstrap_servers: str, purpose: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"ecoshare-{purpose}-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 20,
            "log_level": 3,
        }
    )


def topic_partitions(
    consumer: Consumer, topics: Iterable[str], timeout_seconds: float
) -> list[TopicPosition]:
    """Every (topic, partition) of ``topics``; CompactedTopicError if one is missing."""
    found: list[TopicPosition] = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=timeout_seconds).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise CompactedTopicError(f"topic {topic!r} does not exist")
        found.extend((topic, partition) for partition in sorted(metadata.partitions))
    return found


def _apply(
    records: dict[str, dict[str, JsonObject]], topic: str, raw_key: Any, raw_value: Any
) -> bool:
    try:
        key = decode_key(raw_key)
        value = decode_value(raw_value)
    except ControlRecordError as exc:
        log.warning("undecodable record on %s ignored: %s", topic, exc)
        return False
    if value is None:
        records[topic].pop(key, None)
    else:
        records[topic][key] = value
    return True


def read_compacted_topics(
    bootstrap_servers: str, topics: Iterable[str], *, timeout_seconds: float = 20.0
) -> dict[str, dict[str, JsonObject]]:
    """The latest live value of every key of ``topics``, each partition read to its end.

    The end is where the fetch answer says it is (partition EOF), as in
    :func:`ecoshare.governance.control_plane.read_control_topics`.
    """
    wanted = list(topics)
    consumer = _consumer(bootstrap_servers, "reader")
    records: dict[str, dict[str, JsonObject]] = {topic: {} for topic in wanted}
    deadline = time.monotonic() + timeout_seconds
    try:
        pending = set(topic_partitions(consumer, wanted, timeout_seconds))
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in pending])
        while pending:
            if time.monotonic() > deadline:
                raise CompactedTopicError(
                    f"{', '.join(wanted)} not read to the end within {timeout_seconds:.0f}s"
                )
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                position = (str(message.topic()), int(message.partition() or 0))
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(position)
                        continue
                    raise CompactedTopicError(f"reading {position}: {error}")
                if position in pending:
                    _apply(records, position[0], message.key(), message.value())
        return records
    except KafkaException as exc:
        raise CompactedTopicError(f"could not read {', '.join(wanted)}: {exc}") from exc
    finally:
        consumer.close()


@dataclass(frozen=True, slots=True)
class FollowedChange:
    """One applied record (``value`` None for a deletion)."""

    topic: str
    key: str
    value: JsonObject | None


class CompactedTopicFollower:
    """Keeps the latest value of every key of some compacted topics, in a daemon thread.

    Reads every partition from the start with ``assign()`` (no group, no rebalance) and
    keeps following. :meth:`catch_up` gives read-your-writes across processes: it asks
    the broker for the current ends and waits until the follower has applied them.
    ``on_change`` listeners run in the follower thread after each applied record.
    """

    def __init__(self, bootstrap_servers: str, topics: Iterable[str], *, name: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topics = list(topics)
        self._name = name
        self._records: dict[str, dict[str, JsonObject]] = {topic: {} for topic in self._topics}
        self._positions: dict[TopicPosition, int] = {}
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[FollowedChange], None]] = []
        self._watermarks: Consumer | None = None
        self._watermark_lock = threading.Lock()
        self.version = 0
        self.failure: str | None = None

    def add_listener(self, listener: Callable[[FollowedChange], None]) -> None:
        self._listeners.append(listener)

    def start(self, *, timeout_seconds: float = 30.0) -> CompactedTopicFollower:
        """Start following and return once everything written so far is applied."""
        consumer = _consumer(self._bootstrap_servers, f"{self._name}-follower")
        partitions = topic_partitions(consumer, self._topics, timeout_seconds)
        with self._condition:
            for position in partitions:
                self._positions[position] = 0
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
        self._watermarks = _consumer(self._bootstrap_servers, f"{self._name}-watermarks")
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name=f"{self._name}-follower", daemon=True
        )
        self._thread.start()
        self.catch_up(timeout_seconds)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._watermarks is not None:
            with self._watermark_lock, contextlib.suppress(KafkaException, RuntimeError):
                self._watermarks.close()
            self._watermarks = None

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=500, timeout=0.2)
                if not messages:
                    continue
                changes: list[FollowedChange] = []
                with self._condition:
                    for message in messages:
                        error = message.error()
                        position = (str(message.topic()), int(message.partition() or 0))
                        if error is not None:
                            if error.code() != KafkaError._PARTITION_EOF:
                                log.warning("%s follower: %s", self._name, error)
                            continue
                        offset = int(message.offset() or 0)
                        self._positions[position] = offset + 1
                        if _apply(self._records, position[0], message.key(), message.value()):
                            key = decode_key(message.key())
                            changes.append(
                                FollowedChange(
                                    position[0], key, self._records[position[0]].get(key)
                                )
                            )
                    self.version += 1
                    self._condition.notify_all()
                for change in changes:
                    for listener in self._listeners:
                        try:
                            listener(change)
                        except Exception:  # a listener's bug must not stop the follower
                            log.exception("%s follower listener failed", self._name)
        except KafkaException as exc:
            self.failure = str(exc)
            log.error("%s follower stopped: %s", self._name, exc)
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()

    def ends(self, timeout_seconds: float = 5.0) -> dict[TopicPosition, int]:
        """The broker's current end offset of every followed partition."""
        ends: dict[TopicPosition, int] = {}
        with self._condition:
            positions = list(self._positions)
        with self._watermark_lock:
            if self._watermarks is None:
                raise CompactedTopicError(f"the {self._name} follower is not running")
            for topic, partition in positions:
                try:
                    _low, high = self._watermarks.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=timeout_seconds, cached=False
                    )
                except KafkaException as exc:
                    raise CompactedTopicError(f"end of {topic}[{partition}]: {exc}") from exc
                ends[(topic, partition)] = int(high)
        return ends

    def wait_for(self, targets: Mapping[TopicPosition, int], timeout_seconds: float) -> bool:
        """Wait until every partition's next offset reaches its target; False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        with self._condition:
            while not all(self._positions.get(tp, 0) >= end for tp, end in targets.items()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._condition.wait(min(remaining, 0.1))
        return True

    def wait_for_write(self, written: Written, timeout_seconds: float = 5.0) -> bool:
        """Wait until a record this process wrote (position, offset) is applied."""
        position, offset = written
        return self.wait_for({position: offset + 1}, timeout_seconds)

    def catch_up(self, timeout_seconds: float = 5.0) -> bool:
        """Wait until everything written before this call is applied; False on timeout."""
        return self.wait_for(self.ends(timeout_seconds), timeout_seconds)

    def records(self, topic: str) -> dict[str, JsonObject]:
        """A copy of the live records of ``topic`` by key."""
        with self._condition:
            return dict(self._records[topic])

    def get(self, topic: str, key: str) -> JsonObject | None:
        with self._condition:
            return self._records[topic].get(key)
