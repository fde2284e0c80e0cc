"""Where settings meet adapters: every entry point is wired here.

``python -m ecoshare.api``, ``python -m ecoshare.governance``, ``python -m
ecoshare.registry``, the ``ecoshare`` command and the embedded platform read their
settings through :func:`load_settings` and start their logs with
:func:`start_service_logs`; a governance worker's whole configuration is built once, by
:func:`worker_config`. Heavy modules are imported inside the functions: the CLI imports
this module for every command, and a worker must quiet third-party warnings before the
registry client is imported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecoshare.config.quiet import quiet_third_party_warnings
from ecoshare.config.settings import Settings
from ecoshare.errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

    from ecoshare.catalog.event_catalog import Catalog
    from ecoshare.governance.process import WorkerRuntime
    from ecoshare.governance.supervisor import WorkerProcess
    from ecoshare.governance.worker import WorkerConfig


def load_settings() -> Settings:
    """The ``ECOSHARE_*`` settings; ConfigurationError naming the bad variable."""
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the variable
        raise ConfigurationError(f"invalid ECOSHARE_* setting: {exc}") from exc


def start_service_logs(level: str, role: str | None = None) -> None:
    """Quiet third-party noise and log to stderr, each line naming ``role[pid]``."""
    quiet_third_party_warnings()
    who = f"{role}[%(process)d] " if role else ""
    logging.basicConfig(
        level=level.upper(), format=f"%(asctime)s %(levelname)s {who}%(name)s: %(message)s"
    )
    # Request lines of the registry client would drown a service's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class PlatformConnection:
    bootstrap_servers: str
    schema_registry_url: str


def platform_connection(settings: Settings, who: str) -> PlatformConnection:
    """The broker and registry a service joins; ConfigurationError when either is unset."""
    if not settings.bootstrap_servers or not settings.schema_registry_url:
        raise ConfigurationError(
            f"{who} needs ECOSHARE_BOOTSTRAP_SERVERS and ECOSHARE_SCHEMA_REGISTRY_URL"
        )
    return PlatformConnection(settings.bootstrap_servers, settings.schema_registry_url)


def worker_group(settings: Settings) -> str:
    """The consumer group the governance workers of a platform share."""
    return f"{settings.topic_prefix}ecoshare-governance"


def worker_config(settings: Settings, catalog: Catalog) -> WorkerConfig:
    """A governance worker's configuration, built from the settings in this one place.

    The governed event types are the platform's that the catalog holds; exactly-once
    by transactions asks the cluster when the setting is ``auto``.
    """
    from ecoshare.adapters.kafka.admin import broker_has_transactions
    from ecoshare.config.secrets import signing_secret
    from ecoshare.config.topics import EVENT_TYPES, TopicNames
    from ecoshare.governance.worker import WorkerConfig

    connection = platform_connection(settings, "a worker")
    transactions = (
        broker_has_transactions(connection.bootstrap_servers)
        if settings.exactly_once == "auto"
        else settings.exactly_once == "transactions"
    )
    return WorkerConfig(
        bootstrap_servers=connection.bootstrap_servers,
        schema_registry_url=connection.schema_registry_url,
        names=TopicNames(settings.topic_prefix),
        event_types=tuple(t for t in EVENT_TYPES if t in catalog.event_types),
        master_secret=signing_secret(settings),
        ingress_partitions=settings.ingress_partitions,
        group_id=worker_group(settings),
        batch_size=settings.batch_size,
        audit_checkpoint_interval_ms=settings.audit_checkpoint_interval_ms,
        max_event_bytes=settings.max_event_bytes,
        dedup_window_ms=settings.dedup_window_seconds * 1000,
        dedup_capacity=settings.dedup_capacity,
        engine=settings.engine,
        topic_policy=settings.topic_policy,
        transactions=transactions,
        # With transactions the broker is Apache Kafka, which assigns partitions itself;
        # without, the worker asks the broker when it connects.
        broker_assigns=True if transactions else None,
        worker_id=settings.worker_id,
    )


def worker_runtime(settings: Settings) -> WorkerRuntime:
    """Where a worker process keeps its files and serves its metrics."""
    from ecoshare.governance.process import WorkerRuntime

    return WorkerRuntime(
        data_dir=settings.state_dir / "worker",
        metrics_host=settings.bind_host,
        metrics_port=settings.metrics_port,
    )


def run_worker(settings: Settings) -> None:
    """Run one governance worker process configured by ``settings`` until signalled."""
    from ecoshare.catalog.event_catalog import load_catalog
    from ecoshare.governance.process import run_worker_process

    catalog = load_catalog(settings.schemas_dir)
    run_worker_process(worker_config(settings, catalog), catalog, worker_runtime(settings))


def worker_process(
    settings: Settings,
    connection: PlatformConnection,
    *,
    signing_secret: str,
    index: int,
    logs_dir: Path,
) -> WorkerProcess:
    """The ``index``-th worker child of an embedded platform (not started).

    The child reads the same settings from the ``ECOSHARE_*`` variables it is given and
    builds its configuration with :func:`worker_config`.
    """
    from ecoshare.governance.supervisor import WorkerProcess

    return WorkerProcess(
        bootstrap_servers=connection.bootstrap_servers,
        schema_registry_url=connection.schema_registry_url,
        signing_secret=signing_secret,
        state_dir=settings.state_dir,
        topic_prefix=settings.topic_prefix,
        ingress_partitions=settings.ingress_partitions,
        host=settings.bind_host,
        log_path=logs_dir / f"worker-{index}.log",
        worker_id=f"worker-{index}",
    )
