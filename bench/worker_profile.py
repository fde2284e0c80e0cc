"""``make bench-worker-profile``: where a real worker process spends its time, and what
an idle worker costs the broker.

One governance worker (``python -m cProfile -m ecoshare.governance``) on a fresh broker
(``BENCH_BROKERS``' first entry, tansu by default): first idle for ``IDLE_SECONDS``
(worker and broker CPU per second against the broker alone), then draining
``PROFILE_EVENTS`` pre-loaded events. Prints the profile's top functions by own time
and the worker's I/O calls (produce, poll, flush, consume, delivery callbacks, metric
observations); writes bench/profile-worker.txt. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import io
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

from bench.cpu import process_cpu_seconds
from bench.governed_throughput import (
    PARTITIONS,
    SECRET,
    TYPE,
    BrokerRun,
    Scene,
    log,
)
from ecoshare.adapters import processes
from ecoshare.adapters.brokers import broker_kind, local_broker
from ecoshare.config.settings import REPO_ROOT
from ecoshare.governance.supervisor import WorkerProcess
from ecoshare.registry.process import RegistryProcess

PROFILE_EVENTS = int(os.environ.get("BENCH_PROFILE_EVENTS", "30000"))
IDLE_SECONDS = 10.0
IO_CALLS = (
    "produce",
    "poll",
    "flush",
    "consume",
    "on_delivery",
    "_on_error",
    "_tracker",
    "_observe",
    "observe",
    "drain",
    "_write_checkpoints",
    "_report_gauges",
    "commit",
)


class ProfiledWorker(WorkerProcess):
    """A worker process run under cProfile; the profile is written when it stops."""

    def __init__(self, profile_path: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.profile_path = profile_path

    def start(self, *, wait: bool = True) -> ProfiledWorker:
        command = [sys.executable, "-m", "cProfile", "-o", str(self.profile_path)]
        self._process = processes.spawn(
            [*command, "-m", "ecoshare.governance"], log_path=self.log_path, env=self.env
        )
        if wait:
            self.wait_until_serving()
        return self


def main() -> int:
    kind = broker_kind(os.environ.get("BENCH_BROKERS", "tansu").split(",")[0])
    state_dir = Path(f"/tmp/ecoshare-worker-profile-{uuid.uuid4().hex[:6]}")
    state_dir.mkdir(parents=True)
    scene = Scene(PROFILE_EVENTS)
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
            run = BrokerRun(kind, broker, registry, state_dir, scene)
            names, schema_id = run.governed_setup()
            time.sleep(2.0)
            before = process_cpu_seconds(run.broker_pid)
            time.sleep(IDLE_SECONDS)
            broker_alone = (process_cpu_seconds(run.broker_pid) - before) / IDLE_SECONDS
            profile_path = state_dir / "worker.prof"
            worker = ProfiledWorker(
                profile_path,
                bootstrap_servers=run.bootstrap,
                schema_registry_url=registry.url,
                signing_secret=SECRET.decode(),
                state_dir=state_dir / "worker",
                topic_prefix=names.prefix,
                ingress_partitions=PARTITIONS,
                log_path=state_dir / "worker.log",
            ).start()
            try:
                time.sleep(3.0)  # past the group join and the control-plane read
                broker_before = process_cpu_seconds(run.broker_pid)
                worker_before = process_cpu_seconds(worker.pid)
                time.sleep(IDLE_SECONDS)
                idle_broker = (process_cpu_seconds(run.broker_pid) - broker_before) / IDLE_SECONDS
                idle_worker = (process_cpu_seconds(worker.pid) - worker_before) / IDLE_SECONDS
                log(
                    f"idle, per second: broker alone {broker_alone:.3f} CPU s; with an idle "
                    f"worker: broker {idle_broker:.3f}, worker {idle_worker:.3f}"
                )
                run.preload("profile", names.ingress(TYPE), run.events_file(schema_id, 0, 10**9))
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    done = worker.metric("ecoshare_events_received_total")
                    if done >= PROFILE_EVENTS:
                        break
                    time.sleep(0.5)
                else:
                    raise RuntimeError(f"the worker governed only {done} events")
            finally:
                worker.stop()
    finally:
        broker.stop()
    stats = pstats.Stats(str(profile_path))
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(25)
    text.write("\nthe worker's I/O and bookkeeping calls (own time, cumulative time):\n")
    stats.print_stats("|".join(rf"\({name}\)" for name in IO_CALLS))
    header = (
        f"one {kind} worker governing {PROFILE_EVENTS} events under cProfile "
        f"(whole process, main thread)\n"
        f"idle, CPU seconds per second: broker alone {broker_alone:.3f}; with an idle worker "
        f"broker {idle_broker:.3f}, worker {idle_worker:.3f}\n\n"
    )
    out = REPO_ROOT / "bench" / "profile-worker.txt"
    out.write_text(header + text.getvalue())
    print(header + text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
