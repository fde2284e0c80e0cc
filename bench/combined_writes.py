"""``make bench-combined-writes``: what writing audit blocks and checkpoints together
saves the embedded broker, and what it costs latency.

On tansu (``BENCH_BROKERS``' first entry), the 2,000 events/s latency phase of ``make
bench`` twice per setting of ``ECOSHARE_AUDIT_CHECKPOINT_INTERVAL_MS``: 0 (the audit
blocks and checkpoint of each batch written after it) and 1000 (the default: at most
one write a second). After each phase it reads the end of every progress and audit
partition (records written: one checkpoint each; the audit blocks are as many either
way, but with 0 each went out as its own produce batch). Prints and writes
bench/combined-writes.json.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from bench.governed_throughput import (
    LIGHT_RATE,
    OUT,
    PARTITIONS,
    Scene,
    log,
    started_run,
)
from ecoshare.adapters.brokers import broker_kind
from ecoshare.adapters.kafka.reading import partition_end
from ecoshare.config.topics import TopicNames

SETTINGS = (0, 1000, 0, 1000)
INTERVAL_VARIABLE = "ECOSHARE_AUDIT_CHECKPOINT_INTERVAL_MS"


def main() -> int:
    kind = broker_kind(os.environ.get("BENCH_BROKERS", "tansu").split(",")[0])
    phases: list[dict[str, Any]] = []
    with started_run(kind, Scene(int(LIGHT_RATE * 20)), "bench-combined") as run:
        governed_setup = run.governed_setup
        names: list[TopicNames] = []

        def remembered_setup() -> tuple[TopicNames, int]:
            topics, schema_id = governed_setup()
            names.append(topics)
            return topics, schema_id

        run.governed_setup = remembered_setup  # type: ignore[method-assign]
        mode = "checkpoints" if kind == "kafka" else "auto"
        for interval in SETTINGS:
            os.environ[INTERVAL_VARIABLE] = str(interval)  # the workers inherit it
            log(f"[{kind}] {LIGHT_RATE:,.0f} events/s, {INTERVAL_VARIABLE}={interval}")
            latency = run.latency("latency_light", LIGHT_RATE, mode)
            topics = names[-1]

            def written(topic: str) -> int:
                return sum(partition_end(run.bootstrap, topic, p) for p in range(PARTITIONS))

            phases.append(
                {
                    "interval_ms": interval,
                    "p50_ms": latency["p50_ms"],
                    "p99_ms": latency["p99_ms"],
                    "missed": latency["missed"],
                    "progress_records": written(topics.progress),
                    "audit_records": written(topics.audit),
                    "cpu_seconds": run.cpu["latency_light"],
                }
            )
            log(f"    {json.dumps(phases[-1])}")
    results = {"broker": kind, "rate_eps": LIGHT_RATE, "phases": phases}
    (OUT / "combined-writes.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'interval ms':>12}{'p50 ms':>10}{'p99 ms':>10}{'progress':>10}{'audit':>8}")
    for phase in phases:
        print(
            f"{phase['interval_ms']:>12}{phase['p50_ms']:>10}{phase['p99_ms']:>10}"
            f"{phase['progress_records']:>10}{phase['audit_records']:>8}"
        )
    print("\nwritten to bench/combined-writes.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
