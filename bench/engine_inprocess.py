"""``make bench-engine``: the governance engine alone, in process, native against Python.

No broker and no I/O: the same 3-subscriber scenario as ``make bench`` (personal fields
under consent, a regional row filter, generalised geo), governed in batches of 2,000
by an engine of each core, in the same run, with the garbage collector frozen and tuned
as in the worker. Also times the per-event pieces the native core takes over (strict
scan with envelope, signature check). Prints CPU µs per event (median and best of the
rounds); writes bench/engine_results.json.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.governed_throughput import (
    OUT,
    SECRET,
    TYPE,
    agreements,
    consents,
    encode_all,
    log,
    partners,
    records,
)
from bench.in_process import IngressMessage, in_process_engine
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.config.settings import REPO_ROOT
from ecoshare.config.topics import TopicNames
from ecoshare.demo import scenario
from ecoshare.domain.identity import partner_signing_key, signature_matches
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.cores import native_core
from ecoshare.governance.engine import ADMISSION_FIELDS, WriterSchema

EVENTS = int(os.environ.get("BENCH_ENGINE_EVENTS", "40000"))
ROUNDS = int(os.environ.get("BENCH_ENGINE_ROUNDS", "5"))
BATCH = 2000
SCHEMA_ID = 1
TARGET_US = 5.0


def _per_event_us(run: Callable[[], None], events: int) -> list[float]:
    """CPU µs per event of each round (a warm-up round first, not counted).

    CPU time of this process, not wall time: on a machine whose cores are shared, wall
    time counts the waits for a core too, and moves several-fold with the load.
    """
    run()
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        run()
        rounds.append((time.process_time() - started) * 1e6 / events)
    return rounds


def main() -> int:
    catalog = load_catalog(REPO_ROOT / "schemas")
    schema = catalog.event_schema(TYPE)
    names = TopicNames("benchengine.")
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    places = scenario.generate_locations(scenario.REFERENCE_LOCATION_COUNT, seed=2020)
    state = GovernanceState(partners(), agreements(now), consents(places, now))
    log(f"encoding {EVENTS} StoreStatusChanged events")
    encoded = encode_all(schema, SCHEMA_ID, records(EVENTS, places))
    topic = names.ingress(TYPE)
    messages = [
        IngressMessage(topic, k, v, h, n, appended_ms=now_ms) for n, (k, v, h) in enumerate(encoded)
    ]
    writer = WriterSchema.compile(SCHEMA_ID, TYPE, schema)
    # As in the worker: freeze what exists, collect young objects rarely.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)

    native = native_core()
    # native_per_event: the native core without its batch kernel (event by event).
    cores = ["python"] + (["native_per_event", "native"] if native is not None else [])
    # BENCH_ENGINE_CORES=native: that core alone, without the pieces (e.g. under
    # `perf record -D`, the delay skipping the set-up).
    wanted = os.environ.get("BENCH_ENGINE_CORES")
    if wanted:
        cores = [core for core in cores if core in wanted.split(",")]
    results: dict[str, Any] = {"events": EVENTS, "batch": BATCH, "rounds": ROUNDS}
    for core in cores:

        def govern_all(core: str = core) -> None:
            engine = in_process_engine(  # fresh duplicate windows
                writer,
                names,
                {TYPE: catalog.classification(TYPE)},
                SECRET,
                core=core.removesuffix("_per_event"),
            )
            engine.batch_kernel = engine.batch_kernel and core == "native"
            for start in range(0, len(messages), BATCH):
                engine.govern(messages[start : start + BATCH], state, now, now_ms)

        rounds = _per_event_us(govern_all, EVENTS)
        results[f"{core}_engine_us_per_event"] = round(statistics.median(rounds), 2)
        results[f"{core}_engine_us_per_event_best"] = round(min(rounds), 2)
        median = statistics.median(rounds)
        log(f"{core:>16} engine: {median:6.2f} µs/event (best {min(rounds):.2f})")

    # The pieces, each over every event.
    values = [value for _, value, _ in encoded]
    record_keys = [key for key, _, _ in encoded]
    signatures = [dict(headers)["ecoshare-signature"] for _, _, headers in encoded]
    publishers = [dict(headers)["ecoshare-publisher"].decode() for _, _, headers in encoded]
    keys = {p: partner_signing_key(SECRET, p, 1) for p in set(publishers)}
    python_scan = writer.layout.scan_reading
    assert python_scan is not None
    pieces: dict[str, Callable[[], None]] = {
        "python_scan": lambda: [python_scan(value, 5) for value in values] and None,
        "python_signature": lambda: (
            [
                signature_matches(keys[p], TYPE, k, v, s)
                for p, k, v, s in zip(publishers, record_keys, values, signatures, strict=True)
            ]
            and None
        ),
    }
    if native is not None:
        native_layout = native.Layout(schema, list(ADMISSION_FIELDS))
        pieces["native_scan"] = lambda: [native_layout.scan_reading(v, 5) for v in values] and None
        pieces["native_signature"] = lambda: (
            [
                native.signature_matches(keys[p], TYPE, k, v, s)
                for p, k, v, s in zip(publishers, record_keys, values, signatures, strict=True)
            ]
            and None
        )
    for name, run in pieces.items() if not wanted else ():
        per_event = statistics.median(_per_event_us(run, EVENTS))
        results[f"{name}_us_per_event"] = round(per_event, 2)
        log(f"{name:>17}: {per_event:6.2f} µs/event")
    if "native_engine_us_per_event" in results and "python_engine_us_per_event" in results:
        results["native_speedup"] = round(
            results["python_engine_us_per_event"] / results["native_engine_us_per_event"], 2
        )
        results["target_us_per_event"] = TARGET_US
        log(
            f"native engine {results['native_engine_us_per_event']} µs/event against the "
            f"{TARGET_US} µs target; {results['native_speedup']}x the Python core"
        )
    elif native is None:
        log("native core not built: only the Python core was measured")
    if not wanted:  # a partial run does not replace the saved figures
        (OUT / "engine_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
