"""``make bench``: the governed pipeline against a fair baseline, on Apache Kafka and on
the embedded broker (tansu), in one run on one machine. Each broker gets:

(a) passthrough      raw confluent-kafka in as many processes as there are workers,
                     shaped like a worker (bench/roles.py): same batches, pipelining or
                     transactions, headers and delivery callbacks, forwarding each event
                     unchanged to 3 topics;
(b) naive_faust      a Faust agent forwarding each event with ``await topic.send()`` x3;
(d) governed         ``ecoshare`` workers (one per core) verifying, validating,
                     deduplicating, evaluating 3 agreements (personal fields under
                     consent, a regional row filter, generalised geo), projecting,
                     auditing and checkpointing;
    latency          schedule → receipt at one subscriber (no coordinated omission) at
                     half the governed maximum and at 2,000 events/s, after a warm-up,
                     misses counted;
and, once, in process: (c) the codec floor and the engine's unprofiled rate. Every phase
runs on fresh topics; CPU seconds of every process (broker, workers or passthrough
processes, load generator, reader, this orchestrator) are read from /proc per phase.
Prints a table; writes bench/results.json (one object per broker) and the engine's
profile to bench/profile-governed.txt.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import io
import json
import os
import pickle
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import httpx
from confluent_kafka import Producer

from bench.cpu import CpuMeter, load_average
from bench.in_process import IngressMessage, in_process_engine
from bench.roles import Encoded
from ecoshare.adapters.brokers import BrokerKind, broker_kind, local_broker
from ecoshare.adapters.kafka.admin import TopicSpec, broker_has_transactions, ensure_topics
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.catalog.registration import register_catalog
from ecoshare.codec.wire import frame
from ecoshare.config.settings import REPO_ROOT
from ecoshare.config.topics import EVENT_TYPES, TopicNames
from ecoshare.demo import scenario
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.identity import (
    PUBLISHER_HEADER,
    SIGNATURE_HEADER,
    partner_signing_key,
    sign_event,
)
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.projection import projected_schema
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.control_plane import ControlKind, control_writer
from ecoshare.governance.engine import WriterSchema
from ecoshare.governance.supervisor import WorkerProcess
from ecoshare.governance.topics import governed_topics
from ecoshare.registry.process import RegistryProcess

TYPE = "StoreStatusChanged"
DELIVERED = "ecoshare_events_delivered_total"
PARTITIONS = 4
FANOUT = 3
# Sized for about 15 minutes on a shared 2-core machine, both brokers included.
EVENTS = int(os.environ.get("BENCH_EVENTS", "60000"))
NAIVE_EVENTS = int(os.environ.get("BENCH_NAIVE_EVENTS", "3000"))
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "15"))
LATENCY_WARMUP_SECONDS = 3.0
LATENCY_GRACE_SECONDS = 10.0  # after the last scheduled send; later is a miss
LIGHT_RATE = 2000.0
MAX_LATENCY_RATE = 16000.0  # the half-load phase is capped at this many distinct events/s
WORKERS = 2  # governance workers, and passthrough processes: one per core
BATCH_SIZE = 2000  # the workers' default (ECOSHARE_BATCH_SIZE)
SECRET = b"bench-secret"
PUBLIC_FIELDS = (
    "event_id", "location_id", "location_name", "status", "reason", "opening_hours_today",
    "effective_from", "effective_until", "street", "house_number", "postal_code", "city",
    "occurred_at", "published_at",
)  # fmt: skip
OUT = REPO_ROOT / "bench"


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


# -- the scenario ---------------------------------------------------------------------


def agreements(now: datetime) -> list[Agreement]:
    base = {
        "version": 1,
        "publishers": ["*"],
        "event_types": [TYPE],
        "purpose": "parcel-delivery",
        "valid_from": (now - timedelta(days=1)).isoformat(),
    }
    public = dict.fromkeys(PUBLIC_FIELDS, "deliver")
    return [
        Agreement.model_validate(
            {
                **base,
                "agreement_id": "north-personal",
                "subscriber": "carrier-north",
                "fields": {
                    **public,
                    "latitude": "deliver",
                    "longitude": "deliver",
                    "contact_name": "deliver",
                    "contact_phone": "deliver",
                },
            }
        ),
        Agreement.model_validate(
            {
                **base,
                "agreement_id": "south-region",
                "subscriber": "carrier-south",
                "row_filters": [
                    {"field": "postal_code", "op": "prefix", "prefix_range": ["50", "99"]}
                ],
                "fields": {**public, "latitude": "deliver", "longitude": "deliver"},
            }
        ),
        Agreement.model_validate(
            {
                **base,
                "agreement_id": "app-coarse",
                "subscriber": "consumer-app",
                "fields": {
                    **public,
                    "latitude": {"action": "generalise", "decimals": 2},
                    "longitude": {"action": "generalise", "decimals": 2},
                },
            }
        ),
    ]


def partners() -> list[Partner]:
    publishers = [scenario.OPERATOR_ID, scenario.RETAIL_CHAIN_ID, scenario.FRANCHISE_ID]
    subscribers = ["carrier-north", "carrier-south", "consumer-app"]
    return [
        Partner(partner_id=p, name=p, roles=frozenset({Role.PUBLISHER})) for p in publishers
    ] + [Partner(partner_id=s, name=s, roles=frozenset({Role.SUBSCRIBER})) for s in subscribers]


def consents(places: list[scenario.Location], now: datetime) -> list[ConsentRecord]:
    return [
        ConsentRecord(
            consent_id=f"consent-{place.contact_subject_id}",
            subject=place.contact_subject_id,
            controller=place.publisher_id,
            grantee="carrier-north",
            purpose="parcel-delivery",
            scope=frozenset({"personal"}),
            given_at=now - timedelta(days=30),
        )
        for place in places
        if place.contact_subject_id and hash(place.location_id) % 10 < 7
    ]


def records(count: int, places: list[scenario.Location]) -> list[dict[str, Any]]:
    day = list(
        scenario.lockdown_day(
            places,
            scenario._today_start()
            if hasattr(scenario, "_today_start")
            else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0),
            seed=7,
        )
    )
    status = [record for event_type, record in day if event_type == TYPE]
    out = []
    for n in range(count):
        record = dict(status[n % len(status)])
        record["event_id"] = str(uuid.UUID(int=n + 1, version=4))
        out.append(record)
    return out


def encode_all(
    catalog_schema: dict[str, Any], schema_id: int, items: list[dict[str, Any]]
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    parsed = fastavro.parse_schema(catalog_schema, _write_hint=False)
    keys = {p: partner_signing_key(SECRET, p, 1) for p in {r["publisher_id"] for r in items}}
    encoded = []
    for record in items:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, record)
        value = frame(schema_id, buffer.getvalue())
        headers = [
            (PUBLISHER_HEADER, record["publisher_id"].encode()),
            (
                SIGNATURE_HEADER,
                sign_event(
                    keys[record["publisher_id"]], TYPE, record["location_id"].encode(), value
                ),
            ),
        ]
        encoded.append((record["location_id"].encode(), value, headers))
    return encoded


def produce_all(
    bootstrap: str, topic: str, encoded: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 2_000_000,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    for key, value, headers in encoded:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)


# -- (b) naive Faust --------------------------------------------------------------------


def naive_faust(bootstrap: str, names: TopicNames, encoded: list[Any]) -> float:
    source = f"{names.prefix}faust.in"
    prefix = f"{names.prefix}faust.out"
    ensure_topics(
        bootstrap,
        [TopicSpec(source, PARTITIONS)]
        + [TopicSpec(f"{prefix}{i}", PARTITIONS) for i in range(FANOUT)],
    )
    produce_all(bootstrap, source, encoded[:NAIVE_EVENTS])
    result = Path(f"/tmp/bench-naive-{uuid.uuid4().hex[:6]}.json")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.naive_faust",
            bootstrap,
            source,
            prefix,
            str(FANOUT),
            str(NAIVE_EVENTS),
            str(result),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not result.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    figures = json.loads(result.read_text())
    return figures["events"] / figures["seconds"]


# -- (c) codec floor -------------------------------------------------------------------


def codec_floor(
    schema: dict[str, Any], rules: list[Agreement], items: list[dict[str, Any]]
) -> float:
    """The obvious design's per-event codec work, no I/O and no policy logic: decode the
    whole event, build a dict per subscriber from its granted fields (rounding geo for
    the generalising one), encode it with the subscriber's schema."""
    parsed = fastavro.parse_schema(schema, _write_hint=False)
    bodies = []
    for record in items:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, record)
        bodies.append(buffer.getvalue())
    projected = []
    for rule in rules:
        out_schema = projected_schema(schema, rule, rule.subscriber)
        names = [field["name"] for field in out_schema["fields"]]
        decimals = {
            name: rule.fields[name].decimals
            for name in names
            if rule.fields[name].decimals is not None
        }
        projected.append((fastavro.parse_schema(out_schema, _write_hint=False), names, decimals))
    started = time.perf_counter()
    for body in bodies:
        record: Any = fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
        for out_schema, names, decimals in projected:
            view = {name: record[name] for name in names}
            for name, places in decimals.items():
                view[name] = round(view[name], places)
            out = io.BytesIO()
            fastavro.schemaless_writer(out, out_schema, view)
    return len(bodies) / (time.perf_counter() - started)


# -- (d) governed ----------------------------------------------------------------------


def peak_rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def engine_in_process(
    schema: dict[str, Any],
    schema_id: int,
    encoded: list[Any],
    state: GovernanceState,
    names: TopicNames,
    count: int,
) -> tuple[float, float, str]:
    """The engine governing ``count`` events in process (no broker), in batches of 2,000.

    Returns the unprofiled rate (events/s, and CPU µs per event, which a shared
    machine disturbs less than the wall-clock rate; garbage collector frozen and tuned as in the
    worker process, after a warm-up batch of other events) and a cProfile of a third run
    on fresh events. The profiled rate measures the profiler too; only the unprofiled
    one is the engine's.
    """
    catalog = load_catalog(REPO_ROOT / "schemas")
    compiled = WriterSchema.compile(schema_id, TYPE, schema)

    engine = in_process_engine(compiled, names, {TYPE: catalog.classification(TYPE)}, SECRET)

    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    # Distinct events in each run: a repeated event id would take the duplicate path.
    topic = names.ingress(TYPE)
    messages = [
        IngressMessage(topic, k, v, h, n, appended_ms=now_ms)
        for n, (k, v, h) in enumerate(encoded[: 2 * count + 2000])
    ]
    warm_up, timed, profiled = (
        messages[2 * count :],
        messages[:count],
        messages[count : 2 * count],
    )

    cpu_seconds = 0.0

    def govern_all(batch: list[IngressMessage]) -> float:
        nonlocal cpu_seconds
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, len(batch), 2000):
            engine.govern(batch[start : start + 2000], state, now, now_ms)  # type: ignore[arg-type]
        cpu_seconds = time.process_time() - cpu_started
        return time.perf_counter() - started

    govern_all(warm_up)
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        unprofiled = len(timed) / govern_all(timed)
        cpu_us_per_event = cpu_seconds / len(timed) * 1e6
        profiler = cProfile.Profile()
        profiler.enable()
        elapsed = govern_all(profiled)
        profiler.disable()
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    header = (
        f"engine alone, unprofiled (1 core, no I/O, GC frozen): {unprofiled:,.0f} events/s, "
        f"{cpu_us_per_event:.1f} CPU µs per event\n"
        f"engine alone, profiled: {len(profiled) / elapsed:,.0f} events/s\n"
    )
    return unprofiled, cpu_us_per_event, header + text.getvalue()


# -- the run, per broker -----------------------------------------------------------


class BrokerRun:
    """Every phase of the benchmark on one started broker, each phase on fresh topics."""

    def __init__(
        self, kind: str, broker: Any, registry: RegistryProcess, state_dir: Path, scene: Scene
    ) -> None:
        self.kind = kind
        self.broker = broker
        self.bootstrap: str = broker.bootstrap_servers
        self.registry = registry
        self.state_dir = state_dir
        self.scene = scene
        self.transactions = broker_has_transactions(self.bootstrap)
        members = getattr(broker, "members", None)
        self.broker_pid: int | None = members[0].pid if members else broker.pid
        self.cpu: dict[str, dict[str, float]] = {}
        self._files = 0

    def _file(self, name: str) -> str:
        self._files += 1
        return str(self.state_dir / f"{self._files:03d}-{name}")

    def _spawn(self, role: str, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
        spec.setdefault("stop_file", self._file("stop"))
        path = Path(self._file(f"{role}.json"))
        path.write_text(json.dumps(spec))
        log_file = (self.state_dir / f"{role}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "bench.roles", role, str(path)],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=log_file,
        )

    def _meter(self, **pids: int | None) -> CpuMeter:
        return CpuMeter({"broker": self.broker_pid, "bench": os.getpid(), **pids}).start()

    def governed_setup(self) -> tuple[TopicNames, int]:
        """Fresh governed topics, the catalog registered and the control plane loaded."""
        names = TopicNames(f"bench{uuid.uuid4().hex[:6]}.")
        ensure_topics(self.bootstrap, governed_topics(names, EVENT_TYPES, PARTITIONS))
        ids = {
            entry.subject: entry.schema_id
            for entry in register_catalog(self.scene.catalog, self.registry.url, names)
        }
        with control_writer(self.bootstrap, names) as writer:
            for partner in partners():
                writer.put(ControlKind.PARTNER, partner.partner_id, partner.model_dump(mode="json"))
            for rule in self.scene.rules:
                writer.put(ControlKind.AGREEMENT, rule.agreement_id, rule.model_dump(mode="json"))
            for consent in self.scene.consents:
                writer.put(ControlKind.CONSENT, consent.consent_id, consent.model_dump(mode="json"))
        return names, ids[f"{names.ingress(TYPE)}-value"]

    def events_file(self, schema_id: int, first: int, count: int) -> str:
        path = self._file("events.pickle")
        encoded = self.scene.encoded(schema_id, first, count)
        with open(path, "wb") as sink:
            pickle.dump(encoded, sink)
        return path

    def preload(self, phase: str, topic: str, events_file: str) -> None:
        meter = self._meter()
        generator = self._spawn(
            "publish",
            {
                "bootstrap": self.bootstrap,
                "topic": topic,
                "events_file": events_file,
                "result_file": self._file("publish-result.json"),
            },
        )
        cpu = _wait_exit_cpu(generator, 300, "the load generator")
        self.cpu[f"{phase}_preload"] = {**meter.stop(), "generator": cpu}

    def start_workers(
        self, names: TopicNames, phase: str, extra_env: dict[str, str] | None = None
    ) -> list[WorkerProcess]:
        """Started together, so that the group's first assignment spreads the partitions;
        ``extra_env`` adds settings (ECOSHARE_*) to the workers'."""
        workers = [
            WorkerProcess(
                bootstrap_servers=self.bootstrap,
                schema_registry_url=self.registry.url,
                signing_secret=SECRET.decode(),
                state_dir=self.state_dir / phase,
                topic_prefix=names.prefix,
                ingress_partitions=PARTITIONS,
                log_path=self.state_dir / f"{phase}-worker-{i}.log",
                extra_env=extra_env,
            ).start(wait=False)
            for i in range(WORKERS)
        ]
        for worker in workers:
            worker.wait_until_serving()
        # Serving is not governing: wait until the group has handed every worker its
        # share of the ingress partitions, so that no measured event waits for a join
        # (a KIP-848 join took about 6 s here, longer than any warm-up) and no phase is
        # measured with one worker doing all the work.
        expected = len(EVENT_TYPES) * PARTITIONS
        deadline = time.monotonic() + 60
        owned: list[float] = []
        while time.monotonic() < deadline:
            owned = [w.metric("ecoshare_ingress_partitions_owned") for w in workers]
            if sum(owned) >= expected and min(owned) >= expected // len(workers):
                return workers
            time.sleep(0.2)
        raise RuntimeError(f"{phase}: the workers own {owned} of {expected} partitions")

    def drain(
        self, phase: str, count: Callable[[], float], pids: dict[str, int | None], total: int
    ) -> tuple[float, float]:
        """Wait until ``count()`` reaches ``total``; (events/s, CPU µs per event of ``pids``).

        Both are taken from the first poll that sees events processed, so start-up
        (imports, group join) counts in neither; the same polling serves both pipelines.
        """
        first_at = 0.0
        first_count = 0.0
        meter: CpuMeter | None = None
        deadline = time.monotonic() + 600
        seen = 0.0
        while time.monotonic() < deadline:
            seen = count()
            now = time.perf_counter()
            if seen and meter is None:
                meter = self._meter(**pids)
                first_at, first_count = now, seen
            if seen >= total and meter is not None:
                cpu = meter.stop()
                self.cpu[phase] = cpu
                events = total - first_count
                if events <= 0:
                    raise RuntimeError(f"{phase}: all done before measuring; raise BENCH_EVENTS")
                process_cpu = sum(cpu[name] for name in pids)
                return events / (now - first_at), process_cpu / events * 1e6
            time.sleep(0.2)  # scraping costs the workers CPU; poll gently
        raise RuntimeError(f"{phase}: only {seen} of {total} events processed")

    # -- phases --------------------------------------------------------------------

    def passthrough(self, *, transactions: bool, phase: str = "passthrough") -> tuple[float, float]:
        prefix = f"bench{uuid.uuid4().hex[:6]}.raw."
        source, sinks = f"{prefix}in", [f"{prefix}out{i}" for i in range(FANOUT)]
        ensure_topics(self.bootstrap, [TopicSpec(t, PARTITIONS) for t in (source, *sinks)])
        # The schema id only frames the bytes here; nothing decodes them.
        self.preload(phase, source, self.events_file(1, 0, EVENTS))
        status = [self._file(f"passthrough-{i}.json") for i in range(WORKERS)]
        stop_file = self._file("stop")
        processes = [
            self._spawn(
                "passthrough",
                {
                    "bootstrap": self.bootstrap,
                    "source": source,
                    "sinks": sinks,
                    "group": f"{prefix}group",
                    "batch_size": BATCH_SIZE,
                    "transactions": transactions,
                    "result_file": path,
                    "stop_file": stop_file,
                },
            )
            for path in status
        ]

        def forwarded() -> float:
            total = 0
            for path in status:
                with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                    total += json.loads(Path(path).read_text())["count"]
            return total

        try:
            return self.drain(
                phase,
                forwarded,
                {f"passthrough_{i}": p.pid for i, p in enumerate(processes)},
                EVENTS,
            )
        finally:
            Path(stop_file).touch()
            for process in processes:
                _wait_exit(process, 30, "a passthrough process", kill=True)

    def governed(self) -> dict[str, Any]:
        names, schema_id = self.governed_setup()
        self.preload("governed", names.ingress(TYPE), self.events_file(schema_id, 0, EVENTS))
        workers = self.start_workers(names, "governed")
        scraper = httpx.Client(timeout=5.0)
        try:

            def governed_count() -> float:
                return sum(_events_governed(scraper, w.metrics_url) for w in workers)

            rate, cpu_per_event = self.drain(
                "governed",
                governed_count,
                {f"worker_{i}": w.pid for i, w in enumerate(workers)},
                EVENTS,
            )
            delivered = {
                sub: int(sum(w.metric(DELIVERED, subscriber=sub) for w in workers))
                for sub in ("carrier-north", "carrier-south", "consumer-app")
            }
            return {
                "governed_eps": round(rate),
                "worker_cpu_us_per_event": round(cpu_per_event, 1),
                "governed_deliveries": delivered,
                "worker_peak_rss_mb": round(max(peak_rss_mb(w.pid) for w in workers), 1),
            }
        finally:
            scraper.close()
            for worker in workers:
                worker.stop()

    def latency(self, phase: str, rate: float, exactly_once: str = "auto") -> dict[str, Any]:
        """Publish on a schedule at ``rate`` for LATENCY_SECONDS; schedule → receipt at
        carrier-north. The first LATENCY_WARMUP_SECONDS are sent but not counted; an
        event counted and not received by the end is a miss."""
        names, schema_id = self.governed_setup()
        count = min(int(rate * LATENCY_SECONDS), len(self.scene.bodies))
        rate = count / LATENCY_SECONDS
        events_file = self.events_file(schema_id, 0, count)
        topic = names.delivery("carrier-north", TYPE)
        ensure_topics(self.bootstrap, [TopicSpec(topic, PARTITIONS)])
        workers = self.start_workers(names, phase, {"ECOSHARE_EXACTLY_ONCE": exactly_once})
        reader_result = self._file("reader.json")
        publish_result = self._file("publish-result.json")
        try:
            meter = self._meter(**{f"worker_{i}": w.pid for i, w in enumerate(workers)})
            reader_stop = self._file("stop")
            reader = self._spawn(
                "read",
                {
                    "bootstrap": self.bootstrap,
                    "topic": topic,
                    "partitions": PARTITIONS,
                    "expected": count,
                    "max_seconds": LATENCY_SECONDS + LATENCY_GRACE_SECONDS + 30,
                    "result_file": reader_result,
                    "stop_file": reader_stop,
                },
            )
            deadline = time.monotonic() + 30
            while not Path(reader_result + ".ready").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            generator = self._spawn(
                "publish",
                {
                    "bootstrap": self.bootstrap,
                    "topic": names.ingress(TYPE),
                    "events_file": events_file,
                    "rate": rate,
                    "count": count,
                    "result_file": publish_result,
                },
            )
            generator_cpu = _wait_exit_cpu(generator, LATENCY_SECONDS + 120, "the load generator")
            started = json.loads(Path(publish_result + ".start").read_text())["started"]
            give_up = started + LATENCY_SECONDS + LATENCY_GRACE_SECONDS
            while not Path(reader_result).exists() and time.time() < give_up:
                time.sleep(0.1)
            cpu = meter.stop()
            Path(reader_stop).touch()
            reader_cpu = _wait_exit_cpu(reader, 30, "the latency reader")
            self.cpu[phase] = {**cpu, "generator": generator_cpu, "reader": reader_cpu}
        finally:
            for worker in workers:
                worker.stop()
        received: dict[str, float] = json.loads(Path(reader_result).read_text())["received"]
        publish = json.loads(Path(publish_result).read_text())
        warm_up = int(rate * LATENCY_WARMUP_SECONDS)
        latencies = []
        missed = 0
        for n in range(warm_up, count):
            event_id = self.scene.event_ids[n]
            due = started + n / rate
            at = received.get(event_id)
            if at is None:
                missed += 1
            else:
                latencies.append(at - due)
        latencies.sort()
        if not latencies:
            raise RuntimeError(f"{phase}: no deliveries measured")
        return {
            "rate_eps": round(rate),
            "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(latencies[-1] * 1000, 2),
            "samples": len(latencies),
            "missed": missed,
            "generator_behind_schedule_max_ms": round(publish["behind_schedule_max_s"] * 1000, 1),
        }

    def naive_faust(self) -> float:
        names = TopicNames(f"bench{uuid.uuid4().hex[:6]}.")
        encoded = self.scene.encoded(1, 0, NAIVE_EVENTS)
        return naive_faust(self.bootstrap, names, encoded)


def _events_governed(client: httpx.Client, metrics_url: str) -> float:
    """Events a worker has taken in (governed or quarantined), from its metrics page.

    A line scan over one kept-open client: the Prometheus parser and a new client (TLS
    context included) per request cost the orchestrator seconds of CPU per phase, on a
    machine where every CPU second is shared with what is measured.
    """
    total = 0.0
    for line in client.get(metrics_url).text.splitlines():
        if line.startswith(_TAKEN_IN):
            total += float(line.rsplit(" ", 1)[1])
    return total


# Received counts every ingress message, quarantined ones included.
_TAKEN_IN = ("ecoshare_events_received_total{",)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def _wait_exit(
    process: subprocess.Popen[bytes], seconds: float, what: str, *, kill: bool = False
) -> None:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        if not kill:
            raise RuntimeError(f"{what} did not finish within {seconds:.0f} s") from None


def _wait_exit_cpu(process: subprocess.Popen[bytes], seconds: float, what: str) -> float:
    """Wait for a child to exit; its user + system CPU seconds, from the kernel's
    accounting of the reaped child (exact, however short-lived it was)."""
    deadline = time.monotonic() + seconds
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode:
                raise RuntimeError(f"{what} exited with {process.returncode}")
            return round(usage.ru_utime + usage.ru_stime, 3)
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{what} did not finish within {seconds:.0f} s")
        time.sleep(0.05)


class Scene:
    """The scenario's events, encoded once (Avro bodies), framed and signed per schema id."""

    def __init__(self, count: int) -> None:
        self.catalog = load_catalog(REPO_ROOT / "schemas")
        self.schema = self.catalog.event_schema(TYPE)
        now = datetime.now(UTC)
        places = scenario.generate_locations(scenario.REFERENCE_LOCATION_COUNT, seed=2020)
        self.rules = agreements(now)
        self.consents = consents(places, now)
        self.items = records(count, places)
        self.event_ids = [item["event_id"] for item in self.items]
        parsed = fastavro.parse_schema(self.schema, _write_hint=False)
        self.bodies: list[bytes] = []
        for record in self.items:
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, parsed, record)
            self.bodies.append(buffer.getvalue())
        self._keys = {
            p: partner_signing_key(SECRET, p, 1) for p in {r["publisher_id"] for r in self.items}
        }

    def encoded(self, schema_id: int, first: int, count: int) -> list[Encoded]:
        out = []
        for record, body in zip(
            self.items[first : first + count], self.bodies[first : first + count], strict=True
        ):
            value = frame(schema_id, body)
            publisher = record["publisher_id"]
            headers = [
                (PUBLISHER_HEADER, publisher.encode()),
                (
                    SIGNATURE_HEADER,
                    sign_event(self._keys[publisher], TYPE, record["location_id"].encode(), value),
                ),
            ]
            out.append((record["location_id"].encode(), value, headers))
        return out


@contextlib.contextmanager
def started_run(kind: BrokerKind, scene: Scene, purpose: str = "bench") -> Iterator[BrokerRun]:
    """A fresh local broker of ``kind`` with the registry on it (state under /tmp),
    both stopped on leaving."""
    state_dir = Path(f"/tmp/ecoshare-{purpose}-{kind}-{uuid.uuid4().hex[:6]}")
    state_dir.mkdir(parents=True)
    broker = local_broker(
        kind, logs_dir=state_dir, data_dir=state_dir / "kafka-data" if kind == "kafka" else None
    )
    broker.start()
    try:
        with RegistryProcess(
            bootstrap_servers=broker.bootstrap_servers,
            topic=f"bench{uuid.uuid4().hex[:6]}._schemas",
            log_path=state_dir / "registry.log",
        ) as registry:
            yield BrokerRun(kind, broker, registry, state_dir, scene)
    finally:
        broker.stop()


def run_broker(kind: BrokerKind, scene: Scene) -> dict[str, Any]:
    results: dict[str, Any] = {"load_average_start": load_average()}
    started = time.monotonic()
    with started_run(kind, scene) as run:
        results["transactions"] = run.transactions
        log(f"[{kind}] (a) raw confluent-kafka passthrough, fan-out {FANOUT}, {WORKERS} processes")
        passthrough_eps, passthrough_cpu = run.passthrough(transactions=run.transactions)
        results.update(
            passthrough_eps=round(passthrough_eps),
            passthrough_cpu_us_per_event=round(passthrough_cpu, 1),
        )
        log(f"    {passthrough_eps:,.0f} events/s, {passthrough_cpu:.1f} µs CPU per event")
        if run.transactions:
            # For reference only: what the same processes do without a transaction per
            # batch (the workers' checkpoint mode), since a commit round trip per batch
            # bounds both pipelines alike.
            log(f"[{kind}] (a') the same passthrough without transactions (reference)")
            eps, cpu = run.passthrough(transactions=False, phase="passthrough_no_transactions")
            results.update(
                passthrough_no_transactions_eps=round(eps),
                passthrough_no_transactions_cpu_us_per_event=round(cpu, 1),
            )
            log(f"    {eps:,.0f} events/s, {cpu:.1f} µs CPU per event")
        log(f"[{kind}] (b) naive Faust agent passthrough ({NAIVE_EVENTS} events)")
        results["naive_faust_eps"] = round(run.naive_faust())
        log(f"    {results['naive_faust_eps']:,} events/s")
        log(f"[{kind}] (d) governed pipeline: pre-loading ingress, then {WORKERS} workers")
        results.update(run.governed())
        log(
            f"    {results['governed_eps']:,} events/s, "
            f"{results['worker_cpu_us_per_event']} µs CPU per event"
        )
        half = results["governed_eps"] / 2
        log(f"[{kind}] latency at half the governed maximum: {half:,.0f} events/s")
        heavy = run.latency("latency_half", half)
        log(f"    {heavy}")
        log(f"[{kind}] latency at a light {LIGHT_RATE:,.0f} events/s")
        light = run.latency("latency_light", LIGHT_RATE)
        log(f"    {light}")
        if run.transactions:
            # The other exactly-once mode on the same broker (ECOSHARE_EXACTLY_ONCE=
            # checkpoints): no transaction round trip per batch before readers see it.
            log(f"[{kind}] the same two latency phases with checkpoints, not transactions")
            for phase, rate in (("half", half), ("light", LIGHT_RATE)):
                measured = run.latency(f"latency_{phase}_checkpoints", rate, "checkpoints")
                log(f"    {measured}")
                for name in ("p50_ms", "p99_ms", "max_ms", "missed"):
                    results[f"latency_{phase}_checkpoints_{name}"] = measured[name]
    results.update(
        latency_p50_ms=heavy["p50_ms"],
        latency_p99_ms=heavy["p99_ms"],
        latency_max_ms=heavy["max_ms"],
        latency_samples=heavy["samples"],
        latency_missed=heavy["missed"],
        latency_rate_eps=heavy["rate_eps"],
        latency_generator_behind_ms=heavy["generator_behind_schedule_max_ms"],
        latency_light_rate_eps=light["rate_eps"],
        latency_light_p50_ms=light["p50_ms"],
        latency_light_p99_ms=light["p99_ms"],
        latency_light_max_ms=light["max_ms"],
        latency_light_samples=light["samples"],
        latency_light_missed=light["missed"],
        governed_to_passthrough=round(results["governed_eps"] / passthrough_eps, 3),
        governed_to_naive_faust=round(results["governed_eps"] / results["naive_faust_eps"], 1),
        worker_to_passthrough_cpu=round(
            results["worker_cpu_us_per_event"] / results["passthrough_cpu_us_per_event"], 2
        ),
        cpu_seconds=run.cpu,
        load_average_end=load_average(),
        wall_seconds=round(time.monotonic() - started),
    )
    return results


# Figures other benchmarks write into the same file (each with its own command).
OTHER_BENCH_KEYS = (  # bench/worker_rss.py
    "worker_rss_mb_by_events",
    "worker_rss_slope_mb_per_100k_events",
    "worker_rss_full_windows_mb_by_events",
    "worker_rss_full_windows_slope_mb_per_100k_events",
    "worker_rss_measured_at",
)


def _keep_other_benches(results: dict[str, Any]) -> None:
    """Carry over, per broker, what other benchmarks wrote into bench/results.json."""
    path = OUT / "results.json"
    if not path.exists():
        return
    previous = json.loads(path.read_text())
    for kind, figures in results.items():
        if isinstance(figures, dict) and isinstance(previous.get(kind), dict):
            for key in OTHER_BENCH_KEYS:
                if key in previous[kind] and key not in figures:
                    figures[key] = previous[kind][key]


def main() -> int:
    brokers = [broker_kind(b) for b in os.environ.get("BENCH_BROKERS", "kafka,tansu").split(",")]
    started = time.monotonic()
    log(f"load average {load_average()} on {os.cpu_count()} cores")
    scene_size = max(
        EVENTS, NAIVE_EVENTS, int(MAX_LATENCY_RATE * LATENCY_SECONDS), 2 * 20000 + 2000
    )
    log(f"generating {scene_size} distinct StoreStatusChanged events")
    scene = Scene(scene_size)
    common: dict[str, Any] = {
        "events": EVENTS,
        "subscribers": 3,
        "passthrough_fanout": FANOUT,
        "processes": WORKERS,
        "batch_size": BATCH_SIZE,
        "cores": os.cpu_count(),
        "event_bytes_avg": round(statistics.mean(len(b) + 5 for b in scene.bodies), 1),
        "naive_faust_events": NAIVE_EVENTS,
        "latency_seconds": LATENCY_SECONDS,
        "latency_warmup_seconds": LATENCY_WARMUP_SECONDS,
    }
    log("(c) codec floor, and the engine in process")
    common["codec_floor_eps"] = round(codec_floor(scene.schema, scene.rules, scene.items[:5000]))
    names = TopicNames("bench.")
    state = GovernanceState(partners(), scene.rules, scene.consents)
    engine_eps, engine_cpu_us, profile = engine_in_process(
        scene.schema, 1, scene.encoded(1, 0, 2 * 20000 + 2000), state, names, 20000
    )
    common["engine_eps_in_process"] = round(engine_eps)
    common["engine_cpu_us_per_event_in_process"] = round(engine_cpu_us, 1)
    log(f"    codec floor {common['codec_floor_eps']:,}/s, engine {engine_eps:,.0f}/s unprofiled")
    results: dict[str, Any] = {}
    for kind in brokers:
        results[kind] = {**common, **run_broker(kind, scene)}
        results[kind]["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["wall_seconds"] = round(time.monotonic() - started)
    _keep_other_benches(results)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "profile-governed.txt").write_text(profile)
    print()
    print(f"{'measure':<34}" + "".join(f"{kind:>14}" for kind in brokers))
    for key in (
        "passthrough_eps",
        "naive_faust_eps",
        "codec_floor_eps",
        "engine_eps_in_process",
        "engine_cpu_us_per_event_in_process",
        "governed_eps",
        "governed_to_passthrough",
        "governed_to_naive_faust",
        "worker_cpu_us_per_event",
        "passthrough_cpu_us_per_event",
        "worker_to_passthrough_cpu",
        "latency_rate_eps",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_missed",
        "latency_light_p50_ms",
        "latency_light_p99_ms",
        "latency_light_missed",
        "latency_half_checkpoints_p99_ms",
        "latency_light_checkpoints_p99_ms",
        "worker_peak_rss_mb",
    ):
        cells = (results[kind].get(key) for kind in brokers)
        print(f"{key:<34}" + "".join(f"{'-':>14}" if c is None else f"{c:>14,}" for c in cells))
    for kind in brokers:
        print(f"\nCPU seconds per process and phase, {kind}:")
        for phase, cpu in results[kind]["cpu_seconds"].items():
            print(
                f"  {phase:<22}" + "  ".join(f"{name} {value:.2f}" for name, value in cpu.items())
            )
    print(f"\nwritten to bench/results.json in {results['wall_seconds']} s")
    print(profile.splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
