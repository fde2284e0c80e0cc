"""``make bench-rss``: does a governance worker's memory stay flat over 1,000,000 events?

With the platform's real pieces as ``make bench`` runs them (the
registry, governed topics, the bench scenario's partners, agreements and consents, two
``ecoshare`` worker processes): publishes BENCH_RSS_EVENTS (1,000,000) distinct signed
events, generated and encoded in chunks while the workers govern them, and reads each
worker's resident memory (VmRSS) every BENCH_RSS_SAMPLE_EVERY events governed.

Two runs, on fresh topics and fresh workers each:

- ``default_capacity``: the workers' own settings. Each ingress partition's duplicate
  window keeps up to 500,000 ids for a day, so over one run the windows are still
  filling: the curve rises by what they hold (bounded growth, not a leak).
- ``full_windows``: ECOSHARE_DEDUP_CAPACITY lowered (BENCH_RSS_FULL_CAPACITY, 10,000
  per partition) so the windows fill during the warm-up; after it, whatever still
  grows is not the window. BENCH_RSS_FULL_EVENTS (default: BENCH_RSS_EVENTS) sizes it;
  0 skips it.

The slope is a least-squares fit of each worker's RSS after the warm-up (the first
quarter of the events) in MB per 100,000 events governed by the two workers together.
On each broker of BENCH_BROKERS (default ``kafka,tansu``, each started for it). Writes
bench/rss-results.json (one object per broker), and ``worker_rss_mb_by_events`` (with
the slopes) into that broker's object of bench/results.json, keeping every other key.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import httpx
from confluent_kafka import Producer

from bench.cpu import load_average
from bench.governed_throughput import (
    OUT,
    PARTITIONS,
    SECRET,
    TYPE,
    WORKERS,
    BrokerRun,
    Scene,
    _events_governed,
    log,
    started_run,
)
from bench.roles import Encoded
from ecoshare.adapters.brokers import BrokerKind, broker_kind
from ecoshare.codec.wire import frame
from ecoshare.domain.identity import (
    PUBLISHER_HEADER,
    SIGNATURE_HEADER,
    partner_signing_key,
    sign_event,
)

EVENTS = int(os.environ.get("BENCH_RSS_EVENTS", "1000000"))
FULL_EVENTS = int(os.environ.get("BENCH_RSS_FULL_EVENTS", str(EVENTS)))
FULL_CAPACITY = int(os.environ.get("BENCH_RSS_FULL_CAPACITY", "10000"))
SAMPLE_EVERY = int(os.environ.get("BENCH_RSS_SAMPLE_EVERY", str(max(EVENTS // 40, 1000))))
WARM_UP_FRACTION = 0.25
CHUNK = 5_000  # events generated, encoded and produced at a time
AHEAD = 100_000  # published and not yet governed, at most: the broker is not the subject
TEMPLATES = 2_000  # scenario records the events are copies of (each with its own id)
CURVE_POINTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)  # of the events: 0, 100k, 250k, ... 1M
RESULTS = OUT / "rss-results.json"


def vm_rss_mb(pid: int | None) -> float:
    """Resident memory of ``pid`` now (VmRSS), in MB; 0 once it has exited."""
    if pid is None:
        return 0.0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class ChunkedEvents:
    """Distinct signed events, encoded a chunk at a time from the scenario's records:
    event ``n`` is template ``n mod TEMPLATES`` with the id UUID(int=n+1, version 4)."""

    def __init__(self, scene: Scene, schema_id: int) -> None:
        self._templates = scene.items[:TEMPLATES]
        self._schema = fastavro.parse_schema(scene.schema, _write_hint=False)
        self._schema_id = schema_id
        publishers = {record["publisher_id"] for record in self._templates}
        self._keys = {p: partner_signing_key(SECRET, p, 1) for p in publishers}

    def chunks(self, total: int) -> Iterator[list[Encoded]]:
        for first in range(0, total, CHUNK):
            yield [self._encode(n) for n in range(first, min(first + CHUNK, total))]

    def _encode(self, n: int) -> Encoded:
        record = dict(self._templates[n % len(self._templates)])
        record["event_id"] = str(uuid.UUID(int=n + 1, version=4))
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._schema, record)
        value = frame(self._schema_id, buffer.getvalue())
        publisher = record["publisher_id"]
        key = record["location_id"].encode()
        signature = sign_event(self._keys[publisher], TYPE, key, value)
        return key, value, [(PUBLISHER_HEADER, publisher.encode()), (SIGNATURE_HEADER, signature)]


class Publisher(threading.Thread):
    """Produces the events chunk by chunk, staying at most AHEAD events before what the
    workers have governed (``governed`` is updated by the sampling loop)."""

    def __init__(self, bootstrap: str, topic: str, events: ChunkedEvents, total: int) -> None:
        super().__init__(name="rss-publisher", daemon=True)
        self.governed = 0.0
        self.published = 0
        self.error: BaseException | None = None
        self._topic = topic
        self._events = events
        self._total = total
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "batch.num.messages": 10000,
                "queue.buffering.max.messages": 200_000,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "acks": "all",
            }
        )
        self._stop_requested = threading.Event()

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        try:
            for chunk in self._events.chunks(self._total):
                while self.published - self.governed > AHEAD:
                    if self._stop_requested.wait(0.2):
                        return
                for key, value, headers in chunk:
                    kafka_headers: list[tuple[str, str | bytes | None]] = list(headers)
                    while True:
                        try:
                            self._producer.produce(
                                self._topic, value=value, key=key, headers=kafka_headers
                            )
                            break
                        except BufferError:
                            self._producer.poll(0.05)
                self._producer.poll(0)
                self.published += len(chunk)
                if self._stop_requested.is_set():
                    return
            if self._producer.flush(120):
                raise RuntimeError("the publisher could not deliver every event in 120 s")
        except BaseException as error:  # reported by the sampling loop
            self.error = error


def sample_run(run: BrokerRun, phase: str, total: int, extra_env: dict[str, str]) -> dict[str, Any]:
    """Publish ``total`` events through fresh workers; their RSS every SAMPLE_EVERY."""
    names, schema_id = run.governed_setup()
    workers = run.start_workers(names, phase, extra_env)
    scraper = httpx.Client(timeout=10.0)
    publisher = Publisher(
        run.bootstrap, names.ingress(TYPE), ChunkedEvents(run.scene, schema_id), total
    )
    samples: list[dict[str, Any]] = []
    started = time.monotonic()

    def sample(governed: list[float]) -> None:
        samples.append(
            {
                "events": int(sum(governed)),
                "seconds": round(time.monotonic() - started, 1),
                "worker_events": [int(g) for g in governed],
                "rss_mb": [round(vm_rss_mb(w.pid), 1) for w in workers],
            }
        )
        log(f"    {samples[-1]['events']:>9,} governed  RSS MB {samples[-1]['rss_mb']}")

    try:
        sample([0.0] * len(workers))
        publisher.start()
        next_sample = SAMPLE_EVERY
        deadline = time.monotonic() + max(600.0, total / 500)  # at least 500 events/s
        while True:
            governed = [_events_governed(scraper, w.metrics_url) for w in workers]
            publisher.governed = sum(governed)
            if publisher.governed >= next_sample or publisher.governed >= total:
                sample(governed)
                next_sample = (int(publisher.governed) // SAMPLE_EVERY + 1) * SAMPLE_EVERY
            if publisher.governed >= total:
                break
            if publisher.error is not None:
                raise RuntimeError(f"{phase}: publishing failed") from publisher.error
            if time.monotonic() > deadline:
                raise RuntimeError(f"{phase}: only {publisher.governed:,.0f} of {total:,} governed")
            time.sleep(0.5)  # scraping costs the workers CPU; poll gently
    finally:
        publisher.stop()
        publisher.join(30)
        scraper.close()
        for worker in workers:
            worker.stop()
    seconds = time.monotonic() - started
    return {
        "events": total,
        "worker_env": extra_env,
        "governed_eps": round(total / seconds),
        "samples": samples,
        "worker_rss_mb_by_events": curve(samples, total),
        "slope_mb_per_100k_events_after_warm_up": slopes(samples, total),
    }


def curve(samples: list[dict[str, Any]], total: int) -> dict[str, list[float]]:
    """Each worker's RSS at 0, 10 %, 25 %, 50 %, 75 % and 100 % of the events: the first
    sample at or past each point."""
    points: dict[str, list[float]] = {}
    for fraction in CURVE_POINTS:
        point = int(total * fraction)
        at = next((s for s in samples if s["events"] >= point), samples[-1])
        points[str(point)] = at["rss_mb"]
    return points


def slopes(samples: list[dict[str, Any]], total: int) -> list[float]:
    """Per worker, least squares of RSS against events governed after the warm-up."""
    after = [s for s in samples if s["events"] >= total * WARM_UP_FRACTION]
    if len(after) < 2:
        return []
    xs = [s["events"] / 100_000 for s in after]
    mean_x = sum(xs) / len(xs)
    spread = sum((x - mean_x) ** 2 for x in xs)
    out = []
    for worker in range(len(after[0]["rss_mb"])):
        ys = [s["rss_mb"][worker] for s in after]
        mean_y = sum(ys) / len(ys)
        covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
        out.append(round(covariance / spread, 2) if spread else 0.0)
    return out


def save(results: dict[str, Any]) -> None:
    """Write bench/rss-results.json (one object per broker) and merge each broker's
    curves into its object of bench/results.json, which belongs to `make bench`."""
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    shared_path = OUT / "results.json"
    shared: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        shared = json.loads(shared_path.read_text())
    for kind, measured in results.items():
        figures = shared.setdefault(kind, {})
        default = measured["default_capacity"]
        figures["worker_rss_mb_by_events"] = default["worker_rss_mb_by_events"]
        figures["worker_rss_slope_mb_per_100k_events"] = default[
            "slope_mb_per_100k_events_after_warm_up"
        ]
        full = measured.get("full_windows")
        if full:
            figures["worker_rss_full_windows_mb_by_events"] = full["worker_rss_mb_by_events"]
            figures["worker_rss_full_windows_slope_mb_per_100k_events"] = full[
                "slope_mb_per_100k_events_after_warm_up"
            ]
        figures["worker_rss_measured_at"] = measured["measured_at"]
    shared_path.write_text(json.dumps(shared, indent=2) + "\n")


def measure(kind: BrokerKind, scene: Scene) -> dict[str, Any]:
    """Both runs on one broker of ``kind``, started for them and stopped after."""
    started = time.monotonic()
    results: dict[str, Any] = {
        "broker": kind,
        "workers": WORKERS,
        "ingress_partitions": PARTITIONS,
        "sample_every": SAMPLE_EVERY,
        "warm_up_events_fraction": WARM_UP_FRACTION,
        "load_average_start": load_average(),
    }
    with started_run(kind, scene, "bench-rss") as run:
        log(f"[{kind}] default capacity: {EVENTS:,} events through {WORKERS} workers")
        results["default_capacity"] = sample_run(run, "rss_default", EVENTS, {})
        if FULL_EVENTS:
            log(
                f"[{kind}] windows full: capacity {FULL_CAPACITY:,} per partition, "
                f"{FULL_EVENTS:,} events"
            )
            results["full_windows"] = sample_run(
                run, "rss_full", FULL_EVENTS, {"ECOSHARE_DEDUP_CAPACITY": str(FULL_CAPACITY)}
            )
    results["load_average_end"] = load_average()
    results["wall_seconds"] = round(time.monotonic() - started)
    results["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def main() -> int:
    log(f"load average {load_average()} on {os.cpu_count()} cores")
    scene = Scene(TEMPLATES)
    kinds = [broker_kind(b) for b in os.environ.get("BENCH_BROKERS", "kafka,tansu").split(",")]
    results = {kind: measure(kind, scene) for kind in kinds}
    save(results)
    print()
    for kind, measured in results.items():
        for name in ("default_capacity", "full_windows"):
            if name in measured:
                run_result = measured[name]
                print(f"[{kind}] {name} ({run_result['worker_env'] or 'worker defaults'}):")
                for events, rss in run_result["worker_rss_mb_by_events"].items():
                    print(f"  {int(events):>9,} events  RSS MB {rss}")
                print(
                    "  slope after warm-up, MB per 100k events: "
                    f"{run_result['slope_mb_per_100k_events_after_warm_up']}"
                )
    print(f"\nwritten to {RESULTS.relative_to(OUT.parent)} and bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
