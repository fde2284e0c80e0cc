"""``make bench-tansu-history``: how the embedded broker's fetch latency grows with the
number of stored batches in a partition.

One partition, records written one per batch (``linger.ms=0``, as a worker's sparse
outputs are written). At each level of history (1k, 2k, 5k, 7.5k, 10k batches by default)
a reader positioned at the partition's end waits for single probe records sent one at
a time; the time from send to receipt is the fetch latency at that history. Bounded:
each level stops after ``--probes`` probes or ``--level-seconds``, and the run stops at
the first level where a probe is not received within ``--probe-timeout`` seconds.
Writes bench/tansu-history.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.cpu import load_average, process_cpu_seconds
from ecoshare.adapters.embedded_broker import EmbeddedBroker
from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.config.settings import REPO_ROOT


def write_single_record_batches(producer: Producer, topic: str, count: int) -> None:
    """``count`` records, each acknowledged before the next is sent: one batch each."""
    for n in range(count):
        producer.produce(topic, value=b"h" * 100, key=str(n).encode(), partition=0)
        if n % 50 == 49:
            producer.flush(30)
    producer.flush(30)


def probe_latencies(
    producer: Producer,
    consumer: Consumer,
    topic: str,
    probes: int,
    probe_timeout: float,
    level_seconds: float,
) -> tuple[list[float], int]:
    """Send→receive seconds of up to ``probes`` single records, and how many timed out."""
    latencies: list[float] = []
    missed = 0
    deadline = time.monotonic() + level_seconds
    for _ in range(probes):
        if time.monotonic() > deadline:
            break
        marker = f"probe-{uuid.uuid4().hex}".encode()
        sent = time.perf_counter()
        producer.produce(topic, value=marker, partition=0)
        producer.flush(10)
        received = False
        give_up = sent + probe_timeout
        while time.perf_counter() < give_up:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            if message.value() == marker:
                latencies.append(time.perf_counter() - sent)
                received = True
                break
        if not received:
            missed += 1
            break
    return latencies, missed


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1000,2000,5000,7500,10000")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--probe-timeout", type=float, default=15.0)
    parser.add_argument("--level-seconds", type=float, default=45.0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "tansu-history.json")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",")]
    topic = f"history-{uuid.uuid4().hex[:8]}"
    rows: list[dict[str, Any]] = []
    with EmbeddedBroker(log_path=Path(f"/tmp/{topic}-broker.log")) as broker:
        bootstrap = broker.bootstrap_servers
        ensure_topics(bootstrap, [TopicSpec(topic, 1)])
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 0,
                "batch.num.messages": 1,
                "acks": "all",
                "log_level": 3,
            }
        )
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": topic,
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "log_level": 3,
            }
        )
        stored = 0
        for level in levels:
            started = time.monotonic()
            write_single_record_batches(producer, topic, level - stored)
            stored = level
            print(f"[history] {level} batches stored in {time.monotonic() - started:.1f} s")
            # Read from the partition's end: only the probes are fetched, over the history.
            _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            consumer.assign([TopicPartition(topic, 0, end)])
            broker_cpu = process_cpu_seconds(broker.pid)
            latencies, missed = probe_latencies(
                producer, consumer, topic, args.probes, args.probe_timeout, args.level_seconds
            )
            stored += len(latencies) + missed
            latencies.sort()
            row: dict[str, Any] = {"batches": level, "probes": len(latencies), "missed": missed}
            if latencies:
                row.update(
                    p50_ms=round(percentile(latencies, 0.5) * 1000, 1),
                    p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
                    max_ms=round(latencies[-1] * 1000, 1),
                    broker_cpu_seconds=round(process_cpu_seconds(broker.pid) - broker_cpu, 2),
                )
            rows.append(row)
            print(f"[history] {row}", flush=True)
            if missed:
                print(f"[history] a probe took over {args.probe_timeout} s: stopping")
                break
        consumer.close()
    result = {
        "broker": "tansu",
        "levels": rows,
        "load_average": load_average(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
