"""An in-memory broker for running a governance worker in process (unit tier only).

It models what the worker's exactly-once argument rests on and nothing more: ordered
partitions with offsets, committed group offsets, a producer whose records reach the
log only when acknowledged (flush, or a prefix of them when its worker dies), and
transactions whose records stay invisible until committed. A crashed worker's clients
are dead: every later call raises :class:`Crash`, so no ``finally`` of the worker can
acknowledge anything after its death.

Its sibling :mod:`tests.unit.fake_kafka_for_adapters` fakes a different seam: the
librdkafka behaviours the follower and the acknowledged writer rely on (partition-end
events, seeks, error objects, delivery callbacks), with no groups or transactions.
The two share no behaviour worth a common model, so they stay apart.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confluent_kafka import TopicPartition

from tests.unit.governed import IngressRecord


class Crash(Exception):  # noqa: N818 - a death, not an error the worker handles
    """The worker process died here."""


@dataclass
class FakeMessage(IngressRecord):
    """A stored record: the engine's ingress stand-in, plus whether a reader sees it."""

    visible: bool = True  # False: written by a transaction not (yet) committed

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)  # no timestamp: the fake broker keeps no clock

    def error(self) -> None:
        return None


@dataclass
class FakeLog:
    """The broker's state: partitions and the group's committed offsets."""

    partitions_per_topic: int
    partitions: dict[tuple[str, int], list[FakeMessage]] = field(default_factory=dict)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    # How far end estimates fall short of the true end (the embedded broker's ListOffsets).
    end_shortfall: int = 3

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        *,
        visible: bool = True,
    ) -> FakeMessage:
        log = self.partitions.setdefault((topic, partition), [])
        message = FakeMessage(
            topic,
            value,
            headers or [],
            offset_number=len(log),
            partition_number=partition,
            key_bytes=key,
            visible=visible,
        )
        log.append(message)
        return message

    def compact(self, topic: str) -> int:
        """Kafka's log compaction: only the latest record of each key stays readable
        (offsets keep their gaps). Returns how many records it removed."""
        removed = 0
        for (name, _), log in self.partitions.items():
            if name != topic:
                continue
            latest = {
                message.key_bytes: message.offset_number for message in log if message.visible
            }
            for message in log:
                if message.visible and latest[message.key_bytes] != message.offset_number:
                    message.visible = False
                    removed += 1
        return removed

    def visible(self, topic: str) -> list[FakeMessage]:
        return [
            message
            for (name, _), log in sorted(self.partitions.items())
            if name == topic
            for message in log
            if message.visible
        ]


@dataclass
class _Pending:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    on_delivery: Callable[[Any, Any], None] | None


class FakeProducer:
    def __init__(self, log: FakeLog) -> None:
        self._log = log
        self._in_flight: list[_Pending] = []
        self._transaction: list[FakeMessage] | None = None
        self._offsets: list[TopicPartition] = []
        self.dead = False
        # Records to these topics fail: their delivery callback gets an error.
        self.refused_topics: set[str] = set()

    def _alive(self) -> None:
        if self.dead:
            raise Crash("dead producer")

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        self._alive()
        self._in_flight.append(_Pending(topic, partition, key, value, headers, on_delivery))

    def _land(self, pending: _Pending) -> FakeMessage:
        in_transaction = self._transaction is not None
        message = self._log.append(
            pending.topic,
            pending.partition,
            pending.key,
            pending.value,
            pending.headers,
            visible=not in_transaction,
        )
        if self._transaction is not None:
            self._transaction.append(message)
        return message

    def poll(self, timeout: float = 0) -> int:
        """With a timeout, the older half of what is in flight is acknowledged (at
        least one record), so a wait for acknowledgements takes several polls."""
        self._alive()
        if timeout > 0 and self._in_flight:
            return self._acknowledge(max(1, len(self._in_flight) // 2))
        return 0

    def flush(self, timeout: float = 0) -> int:
        self._alive()
        self._acknowledge(len(self._in_flight))
        return 0

    def _acknowledge(self, count: int) -> int:
        acknowledged, self._in_flight = self._in_flight[:count], self._in_flight[count:]
        for pending in acknowledged:
            if pending.topic in self.refused_topics:
                if pending.on_delivery is not None:
                    refused = SimpleNamespace(
                        topic=lambda p=pending: p.topic, partition=lambda p=pending: p.partition
                    )
                    pending.on_delivery("refused by the broker", refused)
                continue
            message = self._land(pending)
            if pending.on_delivery is not None:
                pending.on_delivery(None, message)
        return len(acknowledged)

    def die(self, landed: float) -> None:
        """The process dies: the first ``landed`` share of what is in flight reached
        the broker, unacknowledged; an open transaction never commits."""
        count = int(len(self._in_flight) * landed)
        for pending in self._in_flight[:count]:
            self._land(pending)
        self._in_flight = []
        self._transaction = None
        self.dead = True

    # -- transactions ----------------------------------------------------------------

    def init_transactions(self, timeout: float) -> None:
        self._alive()

    def begin_transaction(self) -> None:
        self._alive()
        self._transaction, self._offsets = [], []

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], metadata: object, timeout: float
    ) -> None:
        self._alive()
        self._offsets = list(offsets)

    def commit_transaction(self, timeout: float) -> None:
        self.flush()
        for message in self._transaction or ():
            message.visible = True
        for tp in self._offsets:
            self._log.committed[(tp.topic, tp.partition)] = tp.offset
        self._transaction = None

    def abort_transaction(self, timeout: float) -> None:
        self._in_flight = []
        self._transaction = None


class FakeConsumer:
    """The only member of its group: assigned every partition at its first poll."""

    def __init__(self, log: FakeLog, on_idle: Callable[[], None]) -> None:
        self._log = log
        self._on_idle = on_idle
        self._topics: list[str] = []
        self._callbacks: dict[str, Any] = {}
        self._positions: dict[tuple[str, int], int] = {}
        self._joined = False
        self.dead = False

    def _alive(self) -> None:
        if self.dead:
            raise Crash("dead consumer")

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._topics = list(topics)
        self._callbacks = callbacks

    def consume(self, count: int, timeout: float) -> list[FakeMessage]:
        self._alive()
        if not self._joined:
            self._joined = True
            partitions = [
                TopicPartition(topic, partition)
                for topic in self._topics
                for partition in range(self._log.partitions_per_topic)
            ]
            self._callbacks["on_assign"](self, partitions)
        batch: list[FakeMessage] = []
        for source, position in sorted(self._positions.items()):
            log = self._log.partitions.get(source, [])
            taken = log[position : position + count - len(batch)]
            batch.extend(taken)
            self._positions[source] = position + len(taken)
        if not batch:
            self._on_idle()
        return batch

    def poll(self, timeout: float) -> FakeMessage | None:
        batch = self.consume(1, timeout)
        return batch[0] if batch else None

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions[(tp.topic, tp.partition)] = max(0, tp.offset)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)

    def seek(self, tp: TopicPartition) -> None:
        self._positions[(tp.topic, tp.partition)] = tp.offset

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self._alive()
        for tp in offsets:
            self._log.committed[(tp.topic, tp.partition)] = tp.offset

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        found = self._log.committed
        return [_at(tp, found.get((tp.topic, tp.partition), -1001)) for tp in partitions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        found = self._positions
        return [_at(tp, found.get((tp.topic, tp.partition), -1001)) for tp in partitions]

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float = 0, cached: bool = False
    ) -> tuple[int, int]:
        return 0, len(self._log.partitions.get((tp.topic, tp.partition), []))

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> Any:
        partitions = dict.fromkeys(range(self._log.partitions_per_topic))
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions=partitions)})

    def consumer_group_metadata(self) -> object:
        return object()

    def close(self) -> None:
        self.dead = True


def _at(tp: TopicPartition, offset: int) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition, offset)


class FakeReader:
    """One-shot reads of visible records, counted per topic."""

    def __init__(self, log: FakeLog) -> None:
        self._log = log
        self.records_read: dict[str, int] = {}

    def read(self, assignments: list[tuple[str, int, int]]) -> Generator[FakeMessage]:
        for topic, partition, offset in assignments:
            for message in self._log.partitions.get((topic, partition), [])[max(0, offset) :]:
                if message.visible:
                    self.records_read[topic] = self.records_read.get(topic, 0) + 1
                    yield message

    def end_estimate(self, topic: str, partition: int) -> int:
        end = len(self._log.partitions.get((topic, partition), []))
        return max(0, end - self._log.end_shortfall)
