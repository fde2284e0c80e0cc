"""Governance workers as child processes, for ``ecoshare up``, benchmarks and tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.samples import Sample

from ecoshare.adapters import processes
from ecoshare.errors import EcoshareError


class WorkerStartError(EcoshareError):
    """A governance worker exited or did not come up."""


class WorkerProcess(processes.ChildService):
    """``python -m ecoshare.governance`` with its settings passed as ECOSHARE_* variables."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        schema_registry_url: str,
        signing_secret: str,
        state_dir: Path,
        topic_prefix: str = "",
        metrics_port: int = 0,
        host: str = "127.0.0.1",
        ingress_partitions: int = 4,
        log_path: Path | None = None,
        extra_env: dict[str, str] | None = None,
        startup_timeout_seconds: float = 60.0,
        worker_id: str | None = None,
    ) -> None:
        self.host = host
        self.metrics_port = metrics_port or processes.free_port(host)
        self.log_path = log_path
        self.startup_timeout_seconds = startup_timeout_seconds
        self.env = {
            **os.environ,
            "ECOSHARE_BOOTSTRAP_SERVERS": bootstrap_servers,
            "ECOSHARE_SCHEMA_REGISTRY_URL": schema_registry_url,
            "ECOSHARE_SIGNING_SECRET": signing_secret,
            "ECOSHARE_STATE_DIR": str(state_dir),
            "ECOSHARE_TOPIC_PREFIX": topic_prefix,
            "ECOSHARE_METRICS_PORT": str(self.metrics_port),
            "ECOSHARE_BIND_HOST": host,
            "ECOSHARE_INGRESS_PARTITIONS": str(ingress_partitions),
            **({"ECOSHARE_WORKER_ID": worker_id} if worker_id else {}),
            **(extra_env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self.stop_grace_seconds = 15.0

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def start(self, *, wait: bool = True) -> WorkerProcess:
        self._process = processes.spawn(
            [sys.executable, "-m", "ecoshare.governance"], log_path=self.log_path, env=self.env
        )
        if wait:
            self.wait_until_serving()
        return self

    def wait_until_serving(self) -> None:
        """Wait until the worker's metrics endpoint answers (it opens it first thing)."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise WorkerStartError(
                    f"worker exited with code {self._process.returncode}; see {self.log_path}"
                )
            try:
                httpx.get(self.metrics_url, timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise WorkerStartError(f"worker did not serve metrics in time; see {self.log_path}")

    def samples(self) -> list[Sample]:
        """Every sample the worker's metrics endpoint serves now."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.metrics_url, timeout=5.0).text
        return [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels`` (0 if none)."""
        return sum(
            sample.value
            for sample in self.samples()
            if sample.name == name
            and all(sample.labels.get(key) == value for key, value in labels.items())
        )
