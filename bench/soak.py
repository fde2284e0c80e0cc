"""Sustained load: publish at a steady rate for a long time, on each broker, and watch.

    python -m bench.soak                          # 1,000 events/s for 30 min on tansu and kafka
    python -m bench.soak --minutes 5 --broker kafka

Starts the platform (`ecoshare up` in-process: broker, registry, two workers), applies
one publisher and two subscribers, publishes ``--rate`` events/s with the SDK and reads
both subscribers' deliveries. Every ``--every`` seconds it prints and records: events
published and delivered per second, ingress consumer lag (sum over partitions), the
longest partition stall the workers report, publish→delivery latency p50/p99, and the
RSS of the broker and of each worker, and the CPU (in cores) each process used over
the window: broker, registry, each worker, and this process (SDK publisher + readers).
Results go to ``bench/soak-<broker>.json``, rewritten after every sample so a run that
breaks down or is stopped early still leaves its figures.
A run holds when delivery keeps up with publishing (lag stays bounded) to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from bench.cpu import load_average, process_cpu_seconds
from ecoshare.config.secrets import signing_secret
from ecoshare.config.settings import REPO_ROOT, Settings
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.identity import partner_signing_key
from ecoshare.domain.partners import Partner, Role
from ecoshare.embedded.platform import Platform
from ecoshare.governance.control_plane import ControlKind, control_writer
from ecoshare.sdk import Publisher, Subscriber

RESULTS_DIR = Path(__file__).parent
TYPE = "StoreStatusChanged"
SUBSCRIBERS = ("carrier-north", "carrier-south")


@dataclass
class Sample:
    at_seconds: float
    published_per_second: float
    delivered_per_second: float
    lag_messages: float
    longest_stall_seconds: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    broker_rss_mb: float
    worker_rss_mb: list[float]
    # Cores used over the window (CPU seconds / window seconds), per process.
    cpu_cores: dict[str, float] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)


@dataclass
class SoakRun:
    broker: str
    rate: float
    minutes: float
    published: int = 0
    delivered: int = 0
    samples: list[Sample] = field(default_factory=list)
    held: bool = False


def _rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def _write(out: Path, run: SoakRun) -> None:
    # Whole or not at all: an interrupt mid-write must not leave an empty results file.
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(run), indent=2) + "\n")
    partial.replace(out)


def _event(number: int) -> dict[str, Any]:
    millis = int(time.time() * 1000)
    return {
        "event_id": str(uuid.uuid4()),
        "publisher_id": "postnl",
        "location_id": f"sp-{number % 3750:04d}",
        "location_name": f"PostNL-punt {number % 3750}",
        "status": ("OPEN", "CLOSED", "TEMPORARILY_CLOSED", "LIMITED")[number % 4],
        "reason": "lockdown",
        "opening_hours_today": "09:00-17:30",
        "effective_from": millis,
        "effective_until": None,
        "street": "Damrak",
        "house_number": str(number % 200),
        "postal_code": "5611 AB" if number % 2 else "1012 AB",
        "city": "Amsterdam",
        "latitude": 52.37,
        "longitude": 4.89,
        "contact_subject_id": None,
        "contact_name": None,
        "contact_phone": None,
        "occurred_at": millis,
        "published_at": millis,
    }


def _apply_governance(platform: Platform) -> None:
    with control_writer(platform.bootstrap_servers, platform.names) as writer:
        for partner_id, role in (
            ("postnl", Role.PUBLISHER),
            ("carrier-north", Role.SUBSCRIBER),
            ("carrier-south", Role.SUBSCRIBER),
        ):
            partner = Partner(partner_id=partner_id, name=partner_id, roles=frozenset({role}))
            writer.put(ControlKind.PARTNER, partner_id, partner.model_dump(mode="json"))
        for subscriber in SUBSCRIBERS:
            agreement = Agreement.model_validate(
                {
                    "agreement_id": f"to-{subscriber}",
                    "version": 1,
                    "publishers": ["*"],
                    "subscriber": subscriber,
                    "event_types": [TYPE],
                    "purpose": "parcel-delivery",
                    "valid_from": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                    "fields": {
                        "event_id": "deliver",
                        "status": "deliver",
                        "published_at": "deliver",
                    },
                }
            )
            writer.put(
                ControlKind.AGREEMENT, agreement.agreement_id, agreement.model_dump(mode="json")
            )


def soak(
    broker: str, rate: float, minutes: float, every: float, workers: int, out: Path
) -> SoakRun:
    run = SoakRun(broker=broker, rate=rate, minutes=minutes)
    state_dir = Path(tempfile.mkdtemp(prefix=f"soak-{broker}-"))
    settings = Settings(state_dir=state_dir, broker=broker, workers=workers)
    with Platform(settings, start_api=False) as platform:
        _apply_governance(platform)
        stop = threading.Event()
        counts = {"published": 0, "delivered": 0}
        latencies: list[float] = []
        lock = threading.Lock()

        def publish() -> None:
            key = partner_signing_key(signing_secret(settings), "postnl", 1)
            with Publisher(
                bootstrap_servers=platform.bootstrap_servers,
                schema_registry_url=platform.schema_registry_url,
                partner_id="postnl",
                signing_key=key,
                schemas_dir=REPO_ROOT / "schemas",
            ) as publisher:
                started = time.monotonic()
                tick = 0.05
                number = 0
                while not stop.is_set():
                    due = int((time.monotonic() - started) * rate)
                    while number < due:
                        publisher.publish(_event(number), TYPE)
                        number += 1
                        if number % 200 == 0 or number == due:
                            # Count acknowledged events as they come, not once a
                            # catch-up after a stall is done: a starved publisher
                            # would otherwise read as 0/s, then as a burst.
                            publisher.flush()
                            with lock:
                                counts["published"] = number
                    time.sleep(tick)

        def follow(subscriber_id: str) -> None:
            # Decoding with the SDK, reading with a consumer that commits nothing: the
            # SDK's commit after every record would make this reader the bottleneck.
            decoder = Subscriber(
                bootstrap_servers=platform.bootstrap_servers,
                schema_registry_url=platform.schema_registry_url,
                subscriber_id=subscriber_id,
                event_type=TYPE,
            )
            decoder.close()
            consumer = Consumer(
                {
                    "bootstrap.servers": platform.bootstrap_servers,
                    "group.id": f"soak-{uuid.uuid4().hex}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "topic.metadata.refresh.interval.ms": 1000,
                    "log_level": 3,
                }
            )
            consumer.subscribe([decoder.topic])
            try:
                while not stop.is_set():
                    for message in consumer.consume(500, 0.2):
                        if message.error() is not None:
                            continue
                        published = decoder.decode(message).record.get("published_at")
                        with lock:
                            counts["delivered"] += 1
                            if isinstance(published, datetime) and subscriber_id == SUBSCRIBERS[0]:
                                latencies.append((time.time() - published.timestamp()) * 1000)
            finally:
                consumer.close()

        threads = [threading.Thread(target=publish, daemon=True)] + [
            threading.Thread(target=follow, args=(name,), daemon=True) for name in SUBSCRIBERS
        ]
        for thread in threads:
            thread.start()
        broker_pids = (
            [node.pid for node in getattr(platform.broker, "members", [])]
            if broker == "kafka"
            else [getattr(platform.broker, "pid", None)]
        )
        cpu_pids: dict[str, int | None] = {
            "broker": None,  # summed over broker_pids below
            "registry": platform.registry.pid if platform.registry else None,
            "soak (sdk publisher + readers)": os.getpid(),
        }
        cpu_pids.update({f"worker-{i}": w.pid for i, w in enumerate(platform.workers)})

        def cpu_now() -> dict[str, float]:
            seconds = {name: process_cpu_seconds(pid) for name, pid in cpu_pids.items()}
            seconds["broker"] = sum(process_cpu_seconds(pid) for pid in broker_pids)
            return seconds

        started = time.monotonic()
        last = {"published": 0, "delivered": 0}
        last_cpu = cpu_now()
        try:
            while time.monotonic() - started < minutes * 60:
                time.sleep(every)
                with lock:
                    now = dict(counts)
                    window, latencies[:] = list(latencies), []
                lag = stall = 0.0
                for worker in platform.workers:
                    try:
                        lag += worker.metric("ecoshare_ingress_consumer_lag_messages")
                        stall = max(
                            stall,
                            max(
                                (
                                    s.value
                                    for s in worker.samples()
                                    if s.name == "ecoshare_ingress_partition_stalled_seconds"
                                ),
                                default=0.0,
                            ),
                        )
                    except Exception:  # a worker restarting: no sample this time
                        continue
                cpu = cpu_now()
                cores = {name: round((cpu[name] - last_cpu[name]) / every, 2) for name in cpu}
                last_cpu = cpu
                quantiles = statistics.quantiles(window, n=100) if len(window) > 1 else None
                sample = Sample(
                    at_seconds=round(time.monotonic() - started, 1),
                    published_per_second=(now["published"] - last["published"]) / every,
                    delivered_per_second=(now["delivered"] - last["delivered"])
                    / every
                    / len(SUBSCRIBERS),
                    lag_messages=lag,
                    longest_stall_seconds=stall,
                    latency_p50_ms=round(quantiles[49], 1) if quantiles else None,
                    latency_p99_ms=round(quantiles[98], 1) if quantiles else None,
                    broker_rss_mb=round(sum(_rss_mb(pid) for pid in broker_pids), 1),
                    worker_rss_mb=[round(_rss_mb(w.pid), 1) for w in platform.workers],
                    cpu_cores=cores,
                    load_average=load_average(),
                )
                last = now
                run.samples.append(sample)
                run.published = now["published"]
                run.delivered = now["delivered"] // len(SUBSCRIBERS)
                _write(out, run)
                print(
                    f"[{broker}] t={sample.at_seconds:>6.0f}s published "
                    f"{sample.published_per_second:>6.0f}/s delivered "
                    f"{sample.delivered_per_second:>6.0f}/s lag {sample.lag_messages:>7.0f} "
                    f"stall {sample.longest_stall_seconds:>4.0f}s p50/p99 "
                    f"{sample.latency_p50_ms}/{sample.latency_p99_ms} ms broker "
                    f"{sample.broker_rss_mb:.0f} MB workers {sample.worker_rss_mb} MB cpu {cores} "
                    f"load {sample.load_average}",
                    flush=True,
                )
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)
        run.published = counts["published"]
        run.delivered = counts["delivered"] // len(SUBSCRIBERS)
        tail = run.samples[-3:]
        # Held: at the end, delivery keeps pace and the lag is under ten seconds of input.
        run.held = bool(tail) and all(
            s.lag_messages < 10 * rate and s.delivered_per_second > 0.8 * rate for s in tail
        )
        _write(out, run)
    return run


def summary(run: dict[str, Any], window_seconds: float = 300.0) -> list[str]:
    """One line per window of a recorded run (``bench/soak-<broker>.json``): mean rates,
    largest lag and stall, median p50 and largest p99, last RSS, mean CPU cores."""
    lines = []
    samples = run["samples"]
    for start in range(
        0, int(samples[-1]["at_seconds"]) + 1 if samples else 0, int(window_seconds)
    ):
        window = [s for s in samples if start < s["at_seconds"] <= start + window_seconds]
        if not window:
            continue
        p50s = [s["latency_p50_ms"] for s in window if s["latency_p50_ms"] is not None]
        p99s = [s["latency_p99_ms"] for s in window if s["latency_p99_ms"] is not None]
        cores = {
            name: round(statistics.mean(s["cpu_cores"].get(name, 0.0) for s in window), 2)
            for name in window[-1]["cpu_cores"]
        }
        lines.append(
            f"{run['broker']} {start / 60:>4.0f}-{(start + window_seconds) / 60:<4.0f} min: "
            f"published {statistics.mean(s['published_per_second'] for s in window):.0f}/s, "
            f"delivered {statistics.mean(s['delivered_per_second'] for s in window):.0f}/s, "
            f"lag max {max(s['lag_messages'] for s in window):.0f}, "
            f"stall max {max(s['longest_stall_seconds'] for s in window):.0f} s, "
            f"p50 {round(statistics.median(p50s)) if p50s else '-'} ms, "
            f"p99 max {max(p99s) if p99s else '-'} ms, "
            f"RSS broker {window[-1]['broker_rss_mb']:.0f} MB, "
            f"workers {window[-1]['worker_rss_mb']} MB, cores {cores}, "
            f"load {window[-1]['load_average'][0] if window[-1]['load_average'] else '-'}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="tansu,kafka")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--summarize", type=Path, metavar="FILE", help="print a recorded run by windows"
    )
    args = parser.parse_args()
    if args.summarize is not None:
        print("\n".join(summary(json.loads(args.summarize.read_text()))))
        return
    runs = [
        soak(
            name,
            args.rate,
            args.minutes,
            args.every,
            args.workers,
            args.out_dir / f"soak-{name}.json",
        )
        for name in (broker.strip() for broker in args.broker.split(","))
    ]
    for run in runs:
        print(
            f"{run.broker}: {run.published} published, {run.delivered} delivered per "
            f"subscriber in {run.minutes} min at {run.rate:.0f}/s: "
            f"{'held' if run.held else 'DID NOT HOLD'}"
        )
        print("\n".join(summary(asdict(run))))


if __name__ == "__main__":
    main()
