"""Entry of a governance worker process: ``ecoshare worker`` and ``ecoshare up`` run this."""

from __future__ import annotations

import gc
import logging
import signal
import time
import uuid
from dataclasses import dataclass, field
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
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.config.topics import EVENT_TYPES, TopicNames, TopicPolicy
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.control_app import create_control_app
from ecoshare.governance.live_state import LiveGovernanceState
from ecoshare.governance.observer import WorkerObserver
from ecoshare.governance.worker import GovernanceWorker, WorkerConfig, governed_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerProcessOptions:
    bootstrap_servers: str
    schema_registry_url: str
    topic_prefix: str
    master_secret: bytes
    schemas_dir: Path
    data_dir: Path
    ingress_partitions: int = 4
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    batch_size: int = 2000
    max_event_bytes: int = 65536
    dedup_window_seconds: int = 86400
    dedup_capacity: int = 500_000
    engine: str = "auto"
    group_id: str | None = None
    metrics_port_file: Path | None = None
    topic_policy: TopicPolicy = field(default_factory=TopicPolicy)
    transactions: bool = False
    worker_id: str | None = None


def run_worker_process(options: WorkerProcessOptions) -> None:
    """Run one governance worker until SIGTERM or SIGINT."""
    names = TopicNames(options.topic_prefix)
    catalog = load_catalog(options.schemas_dir)
    event_types = tuple(t for t in EVENT_TYPES if t in catalog.event_types)
    ensure_topics(
        options.bootstrap_servers,
        governed_topics(names, event_types, options.ingress_partitions, options.topic_policy),
        policy=options.topic_policy,
    )
    log.info(
        "exactly once by %s",
        "Kafka transactions" if options.transactions else "progress checkpoints",
    )
    registry = ConsistentRegistry()
    metrics = GovernanceMetrics(registry)
    register_build_info(registry, "worker", __version__)
    _, port = start_metrics_server(registry, options.metrics_host, options.metrics_port)
    if options.metrics_port_file is not None:
        options.metrics_port_file.write_text(str(port))
    log.info("worker metrics on http://%s:%d/metrics", options.metrics_host, port)

    (options.data_dir / "control").mkdir(parents=True, exist_ok=True)
    group = options.group_id or f"{options.topic_prefix}ecoshare-governance"
    control = create_control_app(
        f"{group}-control-{uuid.uuid4().hex[:8]}",
        options.bootstrap_servers,
        names,
        data_dir=options.data_dir / "control",
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
        metrics, names=names, event_types=event_types, ingress_partitions=options.ingress_partitions
    )
    worker = GovernanceWorker(
        WorkerConfig(
            bootstrap_servers=options.bootstrap_servers,
            schema_registry_url=options.schema_registry_url,
            names=names,
            event_types=event_types,
            master_secret=options.master_secret,
            ingress_partitions=options.ingress_partitions,
            group_id=group,
            batch_size=options.batch_size,
            max_event_bytes=options.max_event_bytes,
            dedup_window_ms=options.dedup_window_seconds * 1000,
            dedup_capacity=options.dedup_capacity,
            engine=options.engine,
            topic_policy=options.topic_policy,
            transactions=options.transactions,
            worker_id=options.worker_id,
        ),
        catalog,
        current_state,
        observer,
    )

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
