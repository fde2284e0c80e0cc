"""``make bench``: the governed pipeline against its baselines, in one run, one machine.

All figures come from the same run on the embedded broker (loopback), so ratios are
meaningful on a noisy machine even when absolute numbers move:

(a) passthrough      raw confluent-kafka: consume once, produce the unchanged bytes to
                     3 topics (one process);
(b) naive_faust      a Faust agent forwarding each event with ``await topic.send()`` x3;
(c) codec_floor      in process, no I/O: fastavro decode + 3 projected encodes;
(d) governed         ``ecoshare`` workers (one per core) verifying, validating,
                     deduplicating, evaluating 3 agreements (personal fields under
                     consent, a regional row filter, generalised geo), projecting,
                     auditing and checkpointing;
plus publish→delivery latency at half the governed maximum, the workers' peak RSS,
and a profile of the hot path. Prints a table; writes bench/results.json.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, Producer

from ecoshare.adapters.embedded_broker import EmbeddedBroker
from ecoshare.adapters.kafka_admin import TopicSpec, ensure_topics
from ecoshare.catalog import load_catalog
from ecoshare.codec.layout import compile_layout
from ecoshare.codec.wire import frame
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
from ecoshare.governance.control_plane import ControlKind, ControlPlaneWriter
from ecoshare.governance.engine import GovernanceEngine, WriterSchema
from ecoshare.governance.supervisor import WorkerProcess
from ecoshare.governance.worker import governed_topics
from ecoshare.registry.process import RegistryProcess
from ecoshare.schema_catalog import register_catalog
from ecoshare.settings import REPO_ROOT
from ecoshare.topics import EVENT_TYPES, TopicNames

TYPE = "StoreStatusChanged"
PARTITIONS = 4
FANOUT = 3
EVENTS = int(os.environ.get("BENCH_EVENTS", "200000"))
NAIVE_EVENTS = int(os.environ.get("BENCH_NAIVE_EVENTS", "10000"))
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "10"))
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


# -- (a) passthrough --------------------------------------------------------------------


def passthrough(bootstrap: str, names: TopicNames, encoded: list[Any]) -> float:
    source = f"{names.prefix}raw.in"
    sinks = [f"{names.prefix}raw.out{i}" for i in range(FANOUT)]
    ensure_topics(bootstrap, [TopicSpec(t, PARTITIONS) for t in (source, *sinks)])
    produce_all(bootstrap, source, encoded)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{names.prefix}raw",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 5,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 1,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 2_000_000,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    consumer.subscribe([source])
    seen = 0
    first = 0.0
    while seen < len(encoded):
        batch = consumer.consume(2000, 0.05)
        for message in batch:
            if message.error() is not None:
                continue
            if not seen:
                first = time.perf_counter()
            for sink in sinks:
                while True:
                    try:
                        producer.produce(
                            sink,
                            value=message.value(),
                            key=message.key(),
                            partition=message.partition(),
                        )
                        break
                    except BufferError:
                        producer.poll(0.01)
            seen += 1
        if batch:
            producer.flush(30)
            consumer.commit(asynchronous=True)
    seconds = time.perf_counter() - first
    consumer.close()
    return len(encoded) / seconds


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


def governed(workers: list[WorkerProcess], total: int) -> float:
    first = 0.0
    last_count = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        count = sum(
            worker.metric("ecoshare_events_received_total")
            + worker.metric("ecoshare_events_quarantined_total")
            for worker in workers
        )
        now = time.perf_counter()
        if count and not first:
            first = now
        if count >= total:
            return total / (now - first)
        last_count = count
        time.sleep(0.2)  # scraping costs the workers CPU; poll gently
    raise RuntimeError(f"governed only {last_count} of {total}")


def latency(
    bootstrap: str, names: TopicNames, encoded: list[Any], rate: float, seconds: float
) -> tuple[float, float, int]:
    """Publish at ``rate`` for ``seconds``; publish→delivery latency at carrier-north."""
    topic = names.delivery("carrier-north", TYPE)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{names.prefix}latency",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 2,
            "fetch.min.bytes": 1,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 20
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    sent: dict[bytes, float] = {}
    received: list[float] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for message in consumer.consume(1000, 0.01):
                if message.error() is not None:
                    continue
                event_id = dict(message.headers() or ())["ecoshare-event-id"]
                at = sent.get(event_id)
                if at is not None:
                    received.append(time.perf_counter() - at)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 0,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
        }
    )
    total = int(rate * seconds)
    started = time.perf_counter()
    catalog = load_catalog(REPO_ROOT / "schemas")
    layout = compile_layout(catalog.event_schema(TYPE))
    for n in range(total):
        key, value, headers = encoded[n % len(encoded)]
        offsets = layout.offsets(value, 5)
        event_id = layout.read("event_id", value, offsets).encode()
        due = started + n / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent[event_id] = time.perf_counter()
        producer.produce(names.ingress(TYPE), value=value, key=key, headers=headers)
        producer.poll(0)
    producer.flush(30)
    time.sleep(2.0)
    stop.set()
    reader.join()
    consumer.close()
    received.sort()
    if not received:
        raise RuntimeError("no deliveries measured")
    p50 = received[len(received) // 2] * 1000
    p99 = received[min(len(received) - 1, int(len(received) * 0.99))] * 1000
    return p50, p99, len(received)


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


def profile_hot_path(
    schema: dict[str, Any],
    schema_id: int,
    encoded: list[Any],
    state: GovernanceState,
    names: TopicNames,
) -> str:
    """cProfile of the engine governing 20k events in process (no broker)."""
    catalog = load_catalog(REPO_ROOT / "schemas")

    class Schemas:
        def writer(self, topic: str, sid: int) -> WriterSchema | None:
            return WriterSchema.compile(schema_id, TYPE, schema) if sid == schema_id else None

        def subject_of(self, sid: int) -> str | None:
            return None

        def by_id(self, sid: int) -> WriterSchema | None:
            return None

    cache = Schemas()
    writer = cache.writer("", schema_id)
    cache.writer = lambda topic, sid: writer if sid == schema_id else None  # type: ignore[method-assign]
    engine = GovernanceEngine(
        schemas=cache,
        classification={TYPE: catalog.classification(TYPE)},
        master_secret=SECRET,
        delivery_topic=names.delivery,
        audit_topic=names.audit,
        quarantine_topic=names.quarantine,
        register_delivery_schema=lambda topic, s: 1,
        max_event_bytes=65536,
        dedup_window_ms=86_400_000,
        dedup_capacity=1_000_000,
        ingress_partitions=lambda topic: 1,  # every message below is on partition 0
    )

    class Message:
        __slots__ = ("_h", "_k", "_o", "_v")

        def __init__(self, key: bytes, value: bytes, headers: Any, offset: int) -> None:
            self._k, self._v, self._h, self._o = key, value, headers, offset

        def topic(self) -> str:
            return names.ingress(TYPE)

        def partition(self) -> int:
            return 0

        def offset(self) -> int:
            return self._o

        def key(self) -> bytes:
            return self._k

        def value(self) -> bytes:
            return self._v

        def headers(self) -> Any:
            return self._h

    messages = [Message(k, v, h, n) for n, (k, v, h) in enumerate(encoded[:20000])]
    now = datetime.now(UTC)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for start in range(0, len(messages), 2000):
        engine.govern(messages[start : start + 2000], state, now, int(now.timestamp() * 1000))
    profiler.disable()
    elapsed = time.perf_counter() - started
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(18)
    header = f"engine alone (profiled, 1 core, no I/O): {len(messages) / elapsed:,.0f} events/s\n"
    return header + text.getvalue()


def main() -> int:
    names = TopicNames(f"bench{uuid.uuid4().hex[:6]}.")
    state_dir = Path(f"/tmp/ecoshare-bench-{uuid.uuid4().hex[:6]}")
    state_dir.mkdir(parents=True)
    catalog = load_catalog(REPO_ROOT / "schemas")
    schema = catalog.event_schema(TYPE)
    now = datetime.now(UTC)
    places = scenario.generate_locations(scenario.REFERENCE_LOCATION_COUNT, seed=2020)
    rules = agreements(now)
    consent_list = consents(places, now)
    log(f"generating {EVENTS} StoreStatusChanged events from {len(places)} Dutch locations")
    items = records(EVENTS, places)
    results: dict[str, Any] = {
        "events": EVENTS,
        "subscribers": 3,
        "passthrough_fanout": FANOUT,
        "cores": os.cpu_count(),
    }
    with (
        EmbeddedBroker(log_path=state_dir / "broker.log") as broker,
        RegistryProcess(
            bootstrap_servers=broker.bootstrap_servers,
            topic=names.schemas,
            log_path=state_dir / "registry.log",
        ) as registry,
    ):
        bootstrap = broker.bootstrap_servers
        ensure_topics(bootstrap, governed_topics(names, EVENT_TYPES, PARTITIONS))
        ids = {
            entry.subject: entry.schema_id
            for entry in register_catalog(catalog, registry.url, names)
        }
        schema_id = ids[f"{names.ingress(TYPE)}-value"]
        encoded = encode_all(schema, schema_id, items)
        results["event_bytes_avg"] = round(statistics.mean(len(v) for _, v, _ in encoded), 1)
        log(f"average event size {results['event_bytes_avg']} bytes")

        log("(c) codec floor")
        results["codec_floor_eps"] = round(codec_floor(schema, rules, items[:20000]))
        log("(a) raw confluent-kafka passthrough, fan-out 3")
        results["passthrough_eps"] = round(passthrough(bootstrap, names, encoded))
        log(f"    {results['passthrough_eps']:,} events/s")
        log(f"(b) naive Faust agent passthrough ({NAIVE_EVENTS} events)")
        results["naive_faust_eps"] = round(naive_faust(bootstrap, names, encoded))
        log(f"    {results['naive_faust_eps']:,} events/s")

        with ControlPlaneWriter(bootstrap, names) as writer:
            for partner in partners():
                writer.put(ControlKind.PARTNER, partner.partner_id, partner.model_dump(mode="json"))
            for rule in rules:
                writer.put(ControlKind.AGREEMENT, rule.agreement_id, rule.model_dump(mode="json"))
            for consent in consent_list:
                writer.put(ControlKind.CONSENT, consent.consent_id, consent.model_dump(mode="json"))
        log("(d) governed pipeline: pre-loading ingress, then 2 workers")
        produce_all(bootstrap, names.ingress(TYPE), encoded)
        workers = [
            WorkerProcess(
                bootstrap_servers=bootstrap,
                schema_registry_url=registry.url,
                signing_secret=SECRET.decode(),
                state_dir=state_dir,
                topic_prefix=names.prefix,
                ingress_partitions=PARTITIONS,
                log_path=state_dir / f"worker-{i}.log",
            ).start()
            for i in range(2)
        ]
        try:
            results["governed_eps"] = round(governed(workers, EVENTS))
            log(f"    {results['governed_eps']:,} events/s")
            delivered = {
                sub: sum(
                    w.metric("ecoshare_events_delivered_total", subscriber=sub) for w in workers
                )
                for sub in ("carrier-north", "carrier-south", "consumer-app")
            }
            results["governed_deliveries"] = {k: int(v) for k, v in delivered.items()}
            rate = results["governed_eps"] / 2
            log(f"latency at half the governed maximum: {rate:,.0f} events/s")
            fresh = encode_all(
                schema,
                schema_id,
                [dict(r, event_id=str(uuid.uuid4())) for r in items[: int(rate * LATENCY_SECONDS)]],
            )
            p50, p99, samples = latency(bootstrap, names, fresh, rate, LATENCY_SECONDS)
            results.update(
                latency_p50_ms=round(p50, 2),
                latency_p99_ms=round(p99, 2),
                latency_samples=samples,
                latency_rate_eps=round(rate),
            )
            low_rate = 2000.0
            log(f"latency at a light {low_rate:,.0f} events/s")
            fresh = encode_all(
                schema,
                schema_id,
                [dict(r, event_id=str(uuid.uuid4())) for r in items[: int(low_rate * 5)]],
            )
            p50, p99, samples = latency(bootstrap, names, fresh, low_rate, 5.0)
            results.update(
                latency_light_rate_eps=round(low_rate),
                latency_light_p50_ms=round(p50, 2),
                latency_light_p99_ms=round(p99, 2),
            )
            results["worker_peak_rss_mb"] = round(max(peak_rss_mb(w.pid) for w in workers), 1)
        finally:
            for worker in workers:
                worker.stop()
        state = GovernanceState(partners(), rules, consent_list)
        profile = profile_hot_path(schema, schema_id, encoded, state, names)
    results["governed_to_passthrough"] = round(
        results["governed_eps"] / results["passthrough_eps"], 3
    )
    results["governed_to_naive_faust"] = round(
        results["governed_eps"] / results["naive_faust_eps"], 1
    )
    results["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "profile-governed.txt").write_text(profile)
    print()
    print(f"{'measure':<34}{'value':>14}")
    for key in (
        "passthrough_eps",
        "naive_faust_eps",
        "codec_floor_eps",
        "governed_eps",
        "governed_to_passthrough",
        "governed_to_naive_faust",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_light_p50_ms",
        "latency_light_p99_ms",
        "worker_peak_rss_mb",
    ):
        print(f"{key:<34}{results[key]:>14,}")
    print("\nwritten to bench/results.json; hot-path profile in bench/profile-governed.txt")
    print(profile.splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
