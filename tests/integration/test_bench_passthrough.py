"""The benchmark's baseline forwards every event unchanged, with a worker's headers, on
each broker, in the mode the workers use there (a transaction per batch on Kafka)."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import pytest
from bench.roles import Passthrough, publish
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from ecoshare.adapters.kafka.admin import TopicSpec, broker_has_transactions, ensure_topics
from ecoshare.governance.engine import AGREEMENT_HEADER
from ecoshare.governance.progress import EVENT_ID_HEADER, SOURCE_HEADER, SOURCE_OFFSETS_HEADER

pytestmark = pytest.mark.slow  # the benchmark's own roles, not the platform's behaviour

EVENTS = 300
SINKS = 3


def _read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-check",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
    out: list[tuple[bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + 60
    while len(out) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        out.append((message.value() or b"", dict(message.headers() or ())))
    consumer.close()
    return out


def test_passthrough_forwards_every_event_to_each_sink_with_worker_headers(
    bootstrap_servers: str, topic_prefix: str, tmp_path: Path
) -> None:
    source = f"{topic_prefix}raw.in"
    sinks = [f"{topic_prefix}raw.out{i}" for i in range(SINKS)]
    ensure_topics(bootstrap_servers, [TopicSpec(t, 2) for t in (source, *sinks)])
    values = [f"event-{n}".encode() for n in range(EVENTS)]
    events_file = tmp_path / "events.pickle"
    events_file.write_bytes(
        pickle.dumps([(str(n).encode(), value, [("h", b"1")]) for n, value in enumerate(values)])
    )
    publish(
        {
            "bootstrap": bootstrap_servers,
            "topic": source,
            "events_file": str(events_file),
            "result_file": str(tmp_path / "published.json"),
        }
    )
    stop_file = tmp_path / "stop"
    status_file = tmp_path / "status.json"
    passthrough = Passthrough(
        {
            "bootstrap": bootstrap_servers,
            "source": source,
            "sinks": sinks,
            "group": f"{topic_prefix}group",
            "batch_size": 100,
            "transactions": broker_has_transactions(bootstrap_servers),
            "result_file": str(status_file),
            "stop_file": str(stop_file),
        }
    )
    runner = threading.Thread(target=passthrough.run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while passthrough.count < EVENTS and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop_file.touch()
        runner.join(60)
    assert not runner.is_alive()
    assert passthrough.count == EVENTS
    for sink in sinks:
        received = _read_all(bootstrap_servers, sink, EVENTS)
        assert sorted(value for value, _ in received) == sorted(values)
        for _, headers in received:
            assert set(headers) == {
                EVENT_ID_HEADER,
                SOURCE_HEADER,
                SOURCE_OFFSETS_HEADER,
                AGREEMENT_HEADER,
            }
            assert headers[SOURCE_HEADER].decode().startswith(f"{source}:")
    tracked = {sink for ends in passthrough.ends.values() for sink in ends}
    if passthrough.transactions:
        # As a worker's transaction: no delivery callback, the commit acknowledges.
        assert tracked == set()
    else:
        # One tracked end offset per (source partition, sink) that carried events.
        assert tracked == set(sinks)
