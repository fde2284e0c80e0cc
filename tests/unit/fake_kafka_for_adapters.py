"""An in-memory stand-in for confluent-kafka's Consumer and Producer, for unit tests of
the Kafka adapters' machinery (the real brokers are used in the integration tier).

The fake consumer behaves as librdkafka does where the adapters rely on it: it reports
a partition's end (``_PARTITION_EOF``) once each time it reaches it, a seek restarts
fetching and so reports the end again, and it has no watermark API at all, so an
adapter that asked for watermarks would fail here.

The worker's exactly-once tests use :mod:`tests.unit.fake_kafka_for_worker` instead
(group offsets, transactions, crashes), a seam this fake does not model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

Position = tuple[str, int]


@dataclass
class FakeError:
    code_value: int
    is_fatal: bool = False

    def code(self) -> int:
        return self.code_value

    def fatal(self) -> bool:
        return self.is_fatal

    def __str__(self) -> str:
        return f"{'fatal ' if self.is_fatal else ''}fake error {self.code_value}"


@dataclass
class FakeMessage:
    topic_name: str
    partition_number: int
    offset_value: int | None
    key_bytes: bytes | None = None
    value_bytes: bytes | None = None
    failure: FakeError | None = None

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int | None:
        return self.offset_value

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes | None:
        return self.value_bytes

    def error(self) -> FakeError | None:
        return self.failure


@dataclass
class FakeCluster:
    """Topics as lists of (key, value) per partition; shared by fake clients."""

    logs: dict[Position, list[tuple[bytes | None, bytes | None]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stalled: set[Position] = field(default_factory=set)
    """Partitions whose fetches get no answer (a slow broker)."""
    fatal_error: bool = False
    consumers: list[FakeConsumer] = field(default_factory=list)

    def create(self, topic: str, partitions: int = 1) -> None:
        with self.lock:
            for partition in range(partitions):
                self.logs.setdefault((topic, partition), [])

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> int:
        with self.lock:
            log = self.logs[(topic, partition)]
            log.append((key, value))
            return len(log) - 1

    def consumer(self, config: dict[str, Any]) -> FakeConsumer:
        consumer = FakeConsumer(self, config)
        self.consumers.append(consumer)
        return consumer


class FakeConsumer:
    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.config = config
        self.positions: dict[Position, int] = {}
        self.end_reported: dict[Position, bool] = {}
        self.seeks: list[Position] = []
        self.closed = False

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        with self.cluster.lock:
            partitions: dict[str, dict[int, None]] = {}
            for name, number in self.cluster.logs:
                partitions.setdefault(name, {})[number] = None
        return SimpleNamespace(
            topics={
                name: SimpleNamespace(error=None, partitions=numbers)
                for name, numbers in partitions.items()
            }
        )

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            start = 0 if tp.offset == OFFSET_BEGINNING else tp.offset
            self.positions[(tp.topic, tp.partition)] = start
            self.end_reported[(tp.topic, tp.partition)] = False

    def seek(self, partition: TopicPartition) -> None:
        position = (partition.topic, partition.partition)
        if position not in self.positions:
            raise KafkaException(KafkaError(KafkaError._STATE))
        self.seeks.append(position)
        self.positions[position] = 0 if partition.offset == OFFSET_BEGINNING else partition.offset
        self.end_reported[position] = False

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        if self.cluster.fatal_error:
            return [FakeMessage("", 0, None, failure=FakeError(KafkaError._FATAL, True))]
        found: list[FakeMessage] = []
        with self.cluster.lock:
            for position, start in self.positions.items():
                if position in self.cluster.stalled:
                    continue
                log = self.cluster.logs[position]
                for offset in range(start, min(len(log), start + num_messages - len(found))):
                    key, value = log[offset]
                    found.append(FakeMessage(position[0], position[1], offset, key, value))
                    self.positions[position] = offset + 1
                if self.positions[position] == len(log) and not self.end_reported[position]:
                    self.end_reported[position] = True
                    found.append(
                        FakeMessage(
                            position[0],
                            position[1],
                            len(log),
                            failure=FakeError(KafkaError._PARTITION_EOF),
                        )
                    )
                elif self.positions[position] < len(log):
                    self.end_reported[position] = False
        if not found:
            time.sleep(min(max(timeout, 0.0), 0.01))
        return found

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeProducer:
    """Records what is produced; ``flush`` delivers according to ``outcome``.

    ``outcome`` is "ack" (delivered at the next offset), "error" (the broker refuses
    it) or "silent" (no report arrives: flush returns the record as still queued).
    """

    config: dict[str, Any]
    outcome: str = "ack"
    refuse_produce: bool = False
    produced: list[dict[str, Any]] = field(default_factory=list)
    _queued: list[Any] = field(default_factory=list)

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.refuse_produce:
            raise BufferError("queue full")
        self.produced.append({"topic": topic, **kwargs})
        self._queued.append((topic, kwargs))

    def flush(self, timeout: float = -1) -> int:
        if self.outcome == "silent":
            return len(self._queued)
        queued, self._queued = self._queued, []
        for topic, kwargs in queued:
            callback = kwargs["on_delivery"]
            if self.outcome == "error":
                callback(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS), None)
            else:
                offset = len(self.produced) - 1
                partition = kwargs.get("partition", 0)
                callback(None, FakeMessage(topic, partition, offset))
        return 0
