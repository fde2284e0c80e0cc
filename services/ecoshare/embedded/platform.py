"""The embedded platform: broker, registry, governance workers and API as local processes.

``ecoshare up`` runs it in the foreground; ``ecoshare demo``, benchmarks and end-to-end
tests start it in-process. The broker is Apache Kafka or tansu (embedded)
(``ECOSHARE_BROKER``, ``ecoshare up --broker``); ``auto``, the default, takes Apache
Kafka where a Java runtime is found and tansu otherwise, and logs which and why. When
ECOSHARE_BOOTSTRAP_SERVERS or ECOSHARE_SCHEMA_REGISTRY_URL is set, that external service
is used instead of starting one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ecoshare.adapters import processes
from ecoshare.adapters.brokers import BrokerDecision, LocalBroker, choose_broker, local_broker
from ecoshare.adapters.kafka.admin import ensure_topics
from ecoshare.application.bootstrap import PlatformConnection, worker_process
from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.catalog.registration import register_catalog
from ecoshare.config.endpoints import ENDPOINTS_FILE
from ecoshare.config.secrets import operator_key, signing_secret
from ecoshare.config.settings import Settings
from ecoshare.config.topics import TopicNames
from ecoshare.embedded.state_lock import StateDirLock
from ecoshare.errors import EcoshareError
from ecoshare.governance.supervisor import WorkerProcess
from ecoshare.governance.topics import governed_topics
from ecoshare.registry.process import RegistryProcess

log = logging.getLogger(__name__)


class ApiStartError(EcoshareError):
    """The HTTP API process exited or did not answer."""


@dataclass
class Platform:
    """Everything ``ecoshare up`` runs. Start with :meth:`start`, stop with :meth:`stop`."""

    settings: Settings
    start_api: bool = True
    broker: LocalBroker | None = None
    broker_decision: BrokerDecision | None = None
    registry: RegistryProcess | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    api_process: subprocess.Popen[bytes] | None = None
    bootstrap_servers: str = ""
    schema_registry_url: str = ""
    api_url: str | None = None
    api_metrics_url: str | None = None
    # One platform per state directory; endpoints are removed only by the one that wrote them.
    _lock: StateDirLock | None = None
    _wrote_endpoints: bool = False

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.settings.topic_prefix)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def start(self) -> Platform:
        settings = self.settings
        self._lock = StateDirLock(self.state_dir).acquire()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        secret = signing_secret(settings).decode()
        operator_key(settings)
        try:
            if settings.bootstrap_servers:
                self.bootstrap_servers = settings.bootstrap_servers
            else:
                decision = self.broker_decision = choose_broker(settings.broker)
                self.broker = local_broker(
                    decision.kind,
                    logs_dir=self.logs_dir,
                    data_dir=settings.data_dir
                    or (self.state_dir / "kafka-data" if decision.kind == "kafka" else None),
                    port=settings.broker_port,
                    nodes=settings.kafka_nodes,
                ).start()
                self.bootstrap_servers = self.broker.bootstrap_servers
                # Once started: a broker that cannot start says why in its own one line.
                log.info("%s", decision)
            catalog = load_catalog(settings.schemas_dir)
            policy = settings.topic_policy
            ensure_topics(
                self.bootstrap_servers,
                governed_topics(
                    self.names, catalog.event_types, settings.ingress_partitions, policy
                ),
                policy=policy,
            )
            if settings.schema_registry_url:
                self.schema_registry_url = settings.schema_registry_url
            else:
                self.registry = RegistryProcess(
                    bootstrap_servers=self.bootstrap_servers,
                    port=settings.registry_port,
                    topic=self.names.schemas,
                    log_path=self.logs_dir / "registry.log",
                ).start()
                self.schema_registry_url = self.registry.url
            register_catalog(catalog, self.schema_registry_url, self.names)
            connection = PlatformConnection(self.bootstrap_servers, self.schema_registry_url)
            for index in range(settings.workers):
                self.workers.append(
                    worker_process(
                        settings,
                        connection,
                        signing_secret=secret,
                        index=index,
                        logs_dir=self.logs_dir,
                    ).start(wait=False)
                )
            if self.start_api:
                self._start_api(secret)
            for worker in self.workers:
                worker.wait_until_serving()
            self.write_endpoints()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_api(self, secret: str) -> None:
        from ecoshare.api import app as api_module

        del api_module
        host = self.settings.bind_host
        port = self.settings.api_port or processes.free_port(host)
        env = self.child_env(secret) | {"ECOSHARE_API_PORT": str(port)}
        # The public /metrics needs the operator key; the internal port serves Prometheus
        # and `ecoshare status` without one (a port set by the operator is kept).
        metrics_port = int(env.get("ECOSHARE_API_METRICS_PORT") or 0) or processes.free_port(host)
        metrics_host = env.get("ECOSHARE_API_METRICS_HOST") or host
        env |= {
            "ECOSHARE_API_METRICS_PORT": str(metrics_port),
            "ECOSHARE_API_METRICS_HOST": metrics_host,
        }
        self.api_metrics_url = f"http://{metrics_host}:{metrics_port}/metrics"
        self.api_process = processes.spawn(
            [sys.executable, "-m", "ecoshare.api"],
            log_path=self.logs_dir / "api.log",
            env=env,
        )
        self.api_url = f"http://{self.settings.bind_host}:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.api_process.poll() is not None:
                raise ApiStartError(f"the API exited; see {self.logs_dir / 'api.log'}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.api_url}/healthz", timeout=0.5)
                return
            time.sleep(0.1)
        raise ApiStartError(f"the API did not answer; see {self.logs_dir / 'api.log'}")

    def child_env(self, secret: str | None = None) -> dict[str, str]:
        """ECOSHARE_* variables that point a child process at this platform."""
        import os

        return {
            **os.environ,
            "ECOSHARE_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "ECOSHARE_SCHEMA_REGISTRY_URL": self.schema_registry_url,
            "ECOSHARE_SIGNING_SECRET": secret or signing_secret(self.settings).decode(),
            "ECOSHARE_OPERATOR_KEY": operator_key(self.settings),
            "ECOSHARE_STATE_DIR": str(self.state_dir),
            "ECOSHARE_TOPIC_PREFIX": self.settings.topic_prefix,
            "ECOSHARE_INGRESS_PARTITIONS": str(self.settings.ingress_partitions),
            "ECOSHARE_SCHEMAS_DIR": str(self.settings.schemas_dir),
        }

    def endpoints(self) -> dict[str, Any]:
        endpoints: dict[str, Any] = {
            "broker": self.broker.name if self.broker is not None else "external",
            "bootstrap_servers": self.bootstrap_servers,
            "schema_registry_url": self.schema_registry_url,
            "topic_prefix": self.settings.topic_prefix,
            "metrics_urls": {
                f"worker-{index}": worker.metrics_url for index, worker in enumerate(self.workers)
            },
        }
        if self.registry is not None:
            endpoints["metrics_urls"]["registry"] = f"{self.registry.url}/metrics"
        if self.api_url:
            endpoints["api_url"] = self.api_url
            endpoints["metrics_urls"]["api"] = self.api_metrics_url
        return endpoints

    def write_endpoints(self) -> Path:
        path = self.state_dir / ENDPOINTS_FILE
        path.write_text(json.dumps(self.endpoints(), indent=2) + "\n")
        self._wrote_endpoints = True
        return path

    def stop(self) -> None:
        if self.api_process is not None:
            processes.stop(self.api_process)
            self.api_process = None
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self._wrote_endpoints:
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / ENDPOINTS_FILE).unlink()
            self._wrote_endpoints = False
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
