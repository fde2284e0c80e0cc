"""The benchmark's own processes, each its own PID so its CPU can be read apart.

``python -m bench.roles <role> <spec.json>``:

publish      the load generator: pre-loads a topic as fast as it can, or publishes on a
             schedule (event n is due at start + n / rate) with a realistic publisher
             (``linger.ms`` 5, idempotent, acks all); writes its start time.
read         the latency reader: assigned to every partition of a delivery topic from
             the beginning (no group join), stamps each message as the client hands it
             over (one ``poll`` per message), writes event id → receive time.
passthrough  the fair baseline: a raw confluent-kafka process shaped like a governance
             worker (same consumer and producer settings, batch size, headers, one
             delivery callback per output and a tracking closure per final output, the
             same pipelining: the next batch is fetched before the previous one is
             flushed; or, where the workers use transactions, one transaction per
             batch), forwarding each event unchanged to ``fanout`` topics.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from ecoshare.governance.engine import AGREEMENT_HEADER
from ecoshare.governance.progress import EVENT_ID_HEADER, SOURCE_HEADER, SOURCE_OFFSETS_HEADER

Encoded = tuple[bytes, bytes, list[tuple[str, bytes]]]


def _write_json(path: str, payload: dict[str, Any]) -> None:
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(payload))
    temporary.replace(path)


def _stop_requested(spec: dict[str, Any]) -> bool:
    return Path(spec["stop_file"]).exists()


# -- publish -----------------------------------------------------------------------


def publish(spec: dict[str, Any]) -> None:
    with open(spec["events_file"], "rb") as source:
        events: list[Encoded] = pickle.load(source)
    count = spec.get("count") or len(events)
    producer = Producer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 2_000_000,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "log_level": 3,
        }
    )
    topic = spec["topic"]
    rate = spec.get("rate")
    produce = producer.produce
    # The schedule starts a little ahead so that no event is due before the loop runs.
    started = time.time() + 0.2
    _write_json(spec["result_file"] + ".start", {"started": started})
    behind_max = 0.0
    for n in range(count):
        key, value, headers = events[n % len(events)]
        if rate:
            # Never early; when ahead, sleep at least 1 ms and then send everything due
            # (a sleep per event would cost the generator more CPU than the sending).
            due = started + n / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(max(pause, 0.001))
            else:
                behind_max = max(behind_max, -pause)
        while True:
            try:
                produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.01)
        if n % 64 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    _write_json(
        spec["result_file"],
        {
            "started": started,
            "finished": time.time(),
            "count": count,
            "unacknowledged": remaining,
            "behind_schedule_max_s": round(behind_max, 4),
        },
    )


# -- read --------------------------------------------------------------------------


def read(spec: dict[str, Any]) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            "fetch.min.bytes": 1,
            "isolation.level": "read_committed",
            "log_level": 3,
        }
    )
    consumer.assign(
        [TopicPartition(spec["topic"], p, OFFSET_BEGINNING) for p in range(spec["partitions"])]
    )
    received: dict[str, float] = {}
    expected = spec["expected"]
    deadline = time.time() + spec["max_seconds"]
    Path(spec["result_file"] + ".ready").touch()
    while len(received) < expected and time.time() < deadline and not _stop_requested(spec):
        message = consumer.poll(0.05)
        if message is None:
            continue
        stamp = time.time()
        if message.error() is not None:
            continue
        for name, value in message.headers() or ():
            if name == EVENT_ID_HEADER:
                received.setdefault(value.decode(), stamp)
                break
    consumer.close()
    _write_json(spec["result_file"], {"received": received})


# -- passthrough -------------------------------------------------------------------


class Passthrough:
    """One baseline process; see the module docstring for how it mirrors a worker."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.sinks: list[str] = spec["sinks"]
        self.transactions: bool = spec["transactions"]
        producer_config: dict[str, Any] = {
            "bootstrap.servers": spec["bootstrap"],
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "log_level": 3,
        }
        if self.transactions:
            producer_config["transactional.id"] = f"{spec['group']}-{uuid.uuid4().hex}"
            producer_config["transaction.timeout.ms"] = 10_000
        self.producer = Producer(producer_config)
        self.consumer = Consumer(
            {
                "bootstrap.servers": spec["bootstrap"],
                "group.id": spec["group"],
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1666,
                "max.poll.interval.ms": 300_000,
                "fetch.min.bytes": 1,
                "fetch.wait.max.ms": 5,
                "queued.max.messages.kbytes": 262_144,
                "partition.assignment.strategy": "cooperative-sticky",
                "isolation.level": "read_committed",
                "log_level": 3,
            }
        )
        self.errors: list[str] = []
        self.ends: dict[tuple[str, int], dict[str, int]] = {}
        self.pending: list[TopicPartition] | None = None
        self.count = 0
        self.first = 0.0

    def _on_error(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors.append(f"{message.topic()}[{message.partition()}]: {error}")

    def _tracker(self, source: str) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self._on_error(error, message)
            else:
                topic, _, partition = source.rpartition(":")
                ends = self.ends.setdefault((topic, int(partition)), {})
                ends[message.topic() or ""] = (message.offset() or 0) + 1

        return on_delivery

    def _produce(self, batch: list[Message]) -> None:
        outputs = []
        for message in batch:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            source = f"{topic}:{partition}"
            headers = [
                (EVENT_ID_HEADER, f"{partition}-{offset}".encode()),
                (SOURCE_HEADER, source.encode()),
                (SOURCE_OFFSETS_HEADER, str(offset).encode()),
                (AGREEMENT_HEADER, b"passthrough:1"),
            ]
            for sink in self.sinks:
                outputs.append((sink, partition, message.key(), message.value(), headers, source))
        final = {(sink, partition): index for index, (sink, partition, *_) in enumerate(outputs)}
        final_indexes = set(final.values())
        produce = self.producer.produce
        for index, (sink, partition, key, value, headers, source) in enumerate(outputs):
            callback = self._tracker(source) if index in final_indexes else self._on_error
            while True:
                try:
                    produce(
                        sink,
                        value=value,
                        key=key,
                        partition=partition,
                        headers=headers,
                        on_delivery=callback,
                    )
                    break
                except BufferError:
                    self.producer.poll(0.01)
        self.producer.poll(0)

    @staticmethod
    def _positions(batch: list[Message]) -> list[TopicPartition]:
        ends: dict[tuple[str, int], int] = {}
        for message in batch:
            ends[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
        return [TopicPartition(t, p, o) for (t, p), o in ends.items()]

    def _complete_pending(self) -> None:
        if self.pending is None:
            return
        while self.producer.flush(30.0):
            pass
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} outputs failed, first: {self.errors[0]}")
        self.consumer.commit(offsets=self.pending, asynchronous=True)
        self.pending = None

    def _transaction(self, batch: list[Message]) -> None:
        self.producer.begin_transaction()
        self._produce(batch)
        self.producer.send_offsets_to_transaction(
            self._positions(batch), self.consumer.consumer_group_metadata(), 30.0
        )
        self.producer.commit_transaction(30.0)

    def run(self) -> None:
        spec = self.spec
        if self.transactions:
            self.producer.init_transactions(30.0)
        self.consumer.subscribe([spec["source"]])
        next_status = 0.0
        while not _stop_requested(spec):
            messages = self.consumer.consume(spec["batch_size"], 0.005)
            batch = [m for m in messages if m.error() is None]
            if batch:
                if not self.first:
                    self.first = time.time()
                if self.transactions:
                    self._transaction(batch)
                else:
                    self._complete_pending()
                    self._produce(batch)
                    self.pending = self._positions(batch)
                self.count += len(batch)
            else:
                self._complete_pending()
            if time.monotonic() >= next_status:
                _write_json(spec["result_file"], {"count": self.count, "first": self.first})
                next_status = time.monotonic() + 0.1
        self._complete_pending()
        _write_json(spec["result_file"], {"count": self.count, "first": self.first})
        self.consumer.close()


ROLES: dict[str, Callable[[dict[str, Any]], None]] = {
    "publish": publish,
    "read": read,
    "passthrough": lambda spec: Passthrough(spec).run(),
}


if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))
