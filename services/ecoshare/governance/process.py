"""Entry of a governance worker process: ``ecoshare worker`` and ``ecoshare up`` run this."""

from __future__ import annotations

import gc
import logging
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ecoshare import __version__
from ecoshare.adapters.kafka.admin import ensure_topics
from ecoshare.adapters.metrics import (
    ConsistentRegistry,
    GovernanceMetrics,
    register_build_info,
    start_metrics_server,
)
from ecoshare.catalog.event_catalog import Catalog
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.control_app import create_control_app
from ecoshare.governance.live_state import LiveGovernanceState
from ecoshare.governance.observer import WorkerObserver
from ecoshare.governance.topics import governed_topics
from ecoshare.governance.worker import GovernanceWorker, WorkerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerRuntime:
    """What a worker process needs besides its :class:`WorkerConfig`: where it keeps its
    files and where it serves its metrics."""

    data_dir: Path
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    metrics_port_file: Path | None = None


def run_worker_process(config: WorkerConfig, catalog: Catalog, runtime: WorkerRuntime) -> None:
    """Run one governance worker until SIGTERM or SIGINT.

    ``config`` is built once from the settings, by the entry point's bootstrap;
    ``catalog`` is the event catalog its event types come from.
    """
    names = config.names
    ensure_topics(
        config.bootstrap_servers,
        governed_topics(names, config.event_types, config.ingress_partitions, config.topic_policy),
        policy=config.topic_policy,
    )
    log.info(
        "exactly once by %s",
        "Kafka transactions" if config.transactions else "progress checkpoints",
    )
    registry = ConsistentRegistry()
    metrics = GovernanceMetrics(registry)
    register_build_info(registry, "worker", __version__)
    _, port = start_metrics_server(registry, runtime.metrics_host, runtime.metrics_port)
    if runtime.metrics_port_file is not None:
        runtime.metrics_port_file.write_text(str(port))
    log.info("worker metrics on http://%s:%d/metrics", runtime.metrics_host, port)

    (runtime.data_dir / "control").mkdir(parents=True, exist_ok=True)
    control = create_control_app(
        f"{config.group_id}-control-{uuid.uuid4().hex[:8]}",
        config.bootstrap_servers,
        names,
        data_dir=runtime.data_dir / "control",
    )
    control.start_in_thread()
    snapshot = control.wait_until_rebuilt(60.0)
    live = LiveGovernanceState()
    live.follow(snapshot)

    def current_state() -> GovernanceState:
        state = live.follow(control.snapshot())
        metrics.governance_state_version.set(live.snapshot_version)
        return state

    observer = WorkerObserver(
        metrics,
        names=names,
        event_types=config.event_types,
        ingress_partitions=config.ingress_partitions,
    )
    worker = GovernanceWorker(config, catalog, current_state, observer)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # The hot path allocates short-lived objects by the million; with the default
    # thresholds the collector would rescan the long-lived control state and duplicate
    # windows every few hundred events. Freeze what exists now and collect young
    # objects rarely (cycles are rare on the hot path).
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    started = time.monotonic()
    try:
        worker.run()
    finally:
        log.info(
            "worker stopping after %.1fs: %d events in %d batches",
            time.monotonic() - started,
            worker.events,
            worker.batches,
        )
        control.stop_thread()
