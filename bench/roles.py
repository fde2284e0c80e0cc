"""The benchmark's own processes, each its own PID so its CPU can be read apart.

``python -m bench.roles <role> <spec.json>``:

publish      the load generator: pre-loads a topic as fast as it can, or publishes on a
             schedule (event n is due at start + n / rate) with a realistic publisher
             (``linger.ms`` 5, idempotent, acks all); writes its start time.
read         the latency reader: assigned to every partition of a delivery topic from
             the beginning (no group join), stamps each message as the client hands it
             over (one ``poll`` per message), writes event id → receive time.
passthrough  the fair baseline: a raw confluent-kafka process shaped like a governance
             worker (the worker's own consumer and producer settings, batch size and
             headers; the same pipelining: the next batch is fetched before the
             previous one is flushed, with a tracking callback per output partition's
             last record; or, where the workers use transactions, one transaction per
             batch, no callback, aborted and re-read on a rebalance), forwarding each
             event unchanged to ``fanout`` topics.
"""

from __future__ import annotations

import contextlib
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
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from ecoshare.adapters.kafka.config import worker_consumer_config, worker_producer_config
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
        # The very client settings of a governance worker (KIP-848 group protocol
        # where the workers use transactions, that is on Apache Kafka).
        self.producer = Producer(
            worker_producer_config(
                spec["bootstrap"],
                transactional_id=(
                    f"{spec['group']}-{uuid.uuid4().hex}" if self.transactions else None
                ),
                transaction_timeout_ms=10_000,
            )
        )
        self.consumer = Consumer(
            worker_consumer_config(
                spec["bootstrap"],
                spec["group"],
                session_timeout_ms=10_000,
                broker_assigns=self.transactions,
            )
        )
        self.errors: list[str] = []
        self.ends: dict[tuple[str, int], dict[str, int]] = {}
        self.pending: list[TopicPartition] | None = None
        self.count = 0
        self.aborted = 0
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
        """As the worker: in a transaction no callback at all (the commit acknowledges
        the batch); else one tracking callback per output partition's last record."""
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
        final: set[int] = set()
        if not self.transactions:
            last = {(sink, partition): i for i, (sink, partition, *_) in enumerate(outputs)}
            final = set(last.values())
        produce = self.producer.produce
        for index, (sink, partition, key, value, headers, source) in enumerate(outputs):
            while True:
                try:
                    if index in final:
                        produce(
                            sink,
                            value=value,
                            key=key,
                            partition=partition,
                            headers=headers,
                            on_delivery=self._tracker(source),
                        )
                    else:
                        produce(sink, value=value, key=key, partition=partition, headers=headers)
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

    def _transaction(self, batch: list[Message]) -> bool:
        """One transaction per batch; False when it was aborted (as a worker, on a
        rebalance that fenced this member's generation) and the batch is to be re-read."""
        producer = self.producer
        try:
            producer.begin_transaction()
            self._produce(batch)
            producer.send_offsets_to_transaction(
                self._positions(batch), self.consumer.consumer_group_metadata(), 30.0
            )
            producer.commit_transaction(30.0)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError) or not error.txn_requires_abort():
                raise
            producer.abort_transaction(30.0)
            self.aborted += 1
            self._rewind()
            return False
        return True

    def _rewind(self) -> None:
        """Resume every partition still owned at its committed offset."""
        assignment = self.consumer.assignment()
        if not assignment:
            return
        for position in self.consumer.committed(assignment, 30.0):
            with contextlib.suppress(KafkaException):  # revoked meanwhile
                offset = position.offset if position.offset >= 0 else OFFSET_BEGINNING
                self.consumer.seek(TopicPartition(position.topic, position.partition, offset))

    def _status(self) -> None:
        _write_json(
            self.spec["result_file"],
            {"count": self.count, "first": self.first, "aborted": self.aborted},
        )

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
                    if self._transaction(batch):
                        self.count += len(batch)
                else:
                    self._complete_pending()
                    self._produce(batch)
                    self.pending = self._positions(batch)
                    self.count += len(batch)
            else:
                self._complete_pending()
            if time.monotonic() >= next_status:
                self._status()
                next_status = time.monotonic() + 0.1
        self._complete_pending()
        self._status()
        self.consumer.close()


ROLES: dict[str, Callable[[dict[str, Any]], None]] = {
    "publish": publish,
    "read": read,
    "passthrough": lambda spec: Passthrough(spec).run(),
}


if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))
