"""The production topology of docker-compose.yml, started without Docker on a fresh Kafka.

The services run with the commands and the environment the compose file gives them;
only what Docker would provide is translated: container host names and ports become
local ones, image paths become the repository's, and each container gets its own state
directory. The schema registry is the project's own (Confluent-compatible) one. On a
fresh cluster with topic auto-creation off, init must create what the others need.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecoshare.adapters import processes
from ecoshare.adapters.kafka_broker import KafkaCluster
from ecoshare.registry.process import RegistryProcess
from tests.e2e.test_cli import status_event

pytestmark = pytest.mark.slow  # a fresh Kafka cluster and every compose service

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SECRETS = {
    "ECOSHARE_SIGNING_SECRET": uuid.uuid4().hex * 2,
    "ECOSHARE_OPERATOR_KEY": f"op-{uuid.uuid4().hex}",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}")


def _interpolate(value: str, defined: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, fallback = match.groups()
        if name in defined:
            return defined[name]
        if operator == ":?":
            raise AssertionError(f"the compose file requires {name}")
        return fallback or ""

    return _INTERPOLATION.sub(substitute, value)


def _docker_paths(local: dict[str, str]) -> dict[str, str]:
    return {
        "kafka:19092": local["bootstrap_servers"],
        "http://schema-registry:8081": local["registry_url"],
        "/opt/ecoshare/schemas": str(REPO / "schemas"),
        "0.0.0.0": "127.0.0.1",
    }


def service_env(service: str, local: dict[str, str], state_dir: Path) -> dict[str, str]:
    """The service's compose environment, translated from containers to this machine."""
    declared = COMPOSE["services"][service]["environment"]
    translate = _docker_paths(local)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSHARE_")}
    for name, raw in declared.items():
        value = _interpolate(str(raw), SECRETS)
        env[name] = translate.get(value, value)
    env["ECOSHARE_STATE_DIR"] = str(state_dir)
    return env


def _shim(bin_dir: Path) -> None:
    """``ecoshare`` on PATH, as the image's entrypoint, running this checkout."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "ecoshare"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ecoshare.cli.main "$@"\n')
    script.chmod(0o755)


def _healthy(url: str, timeout_seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        assert process.poll() is None, f"the service behind {url} exited"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                assert response.status == 200
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture
def fresh_kafka(tmp_path: Path, broker_kind: str) -> Iterator[dict[str, str]]:
    assert broker_kind == "kafka"
    registry_topic = COMPOSE["services"]["schema-registry"]["environment"][
        "SCHEMA_REGISTRY_KAFKASTORE_TOPIC"
    ]
    with (
        KafkaCluster(data_dir=tmp_path / "kafka") as cluster,
        RegistryProcess(
            bootstrap_servers=cluster.bootstrap_servers,
            topic=registry_topic,
            log_path=tmp_path / "registry.log",
        ) as registry,
    ):
        yield {"bootstrap_servers": cluster.bootstrap_servers, "registry_url": registry.url}


@pytest.mark.brokers("kafka")
def test_compose_services_start_on_a_fresh_cluster_and_govern(
    fresh_kafka: dict[str, str], tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    _shim(bin_dir)
    services = COMPOSE["services"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        # init: its shell command, with the governance file mounted where it expects it.
        init = services["ecoshare-init"]
        mount = next(v for v in init["volumes"] if v.endswith(":/etc/ecoshare/governance.yaml:ro"))
        governance = _interpolate(mount.rsplit(":", 2)[0], {}).replace("./", f"{REPO}/", 1)
        command = " ".join(init["command"]).replace("/etc/ecoshare/governance.yaml", governance)
        env = service_env("ecoshare-init", fresh_kafka, tmp_path / "init")
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        done = subprocess.run(
            [*init["entrypoint"], command], env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stdout + done.stderr

        # workers (replicas as deployed), then the API, each with its compose command.
        worker = services["ecoshare-worker"]
        worker_urls = []
        for index in range(int(worker["deploy"]["replicas"])):
            env = service_env("ecoshare-worker", fresh_kafka, tmp_path / f"worker-{index}")
            assert env["ECOSHARE_METRICS_PORT"] == "9464"
            env["ECOSHARE_METRICS_PORT"] = str(processes.free_port())
            started.append(
                processes.spawn(
                    [str(bin_dir / "ecoshare"), *worker["command"]],
                    env=env,
                    log_path=tmp_path / f"worker-{index}.log",
                )
            )
            worker_urls.append(f"http://127.0.0.1:{env['ECOSHARE_METRICS_PORT']}/metrics")
        api = services["ecoshare-api"]
        api_env = service_env("ecoshare-api", fresh_kafka, tmp_path / "api")
        assert api_env["ECOSHARE_API_PORT"] == "8080"
        api_env["ECOSHARE_API_PORT"] = str(processes.free_port())
        # The internal port Prometheus scrapes (the public /metrics needs the operator key).
        assert "ECOSHARE_API_METRICS_PORT" in api_env
        api_env["ECOSHARE_API_METRICS_PORT"] = str(processes.free_port())
        api_env["ECOSHARE_API_METRICS_HOST"] = "127.0.0.1"
        started.append(
            processes.spawn(
                [str(bin_dir / "ecoshare"), *api["command"]],
                env=api_env,
                log_path=tmp_path / "api.log",
            )
        )
        api_url = f"http://127.0.0.1:{api_env['ECOSHARE_API_PORT']}"

        # Every service becomes healthy by its compose health check's URL.
        for url, process in zip([*worker_urls, f"{api_url}/healthz"], started, strict=True):
            _healthy(url, 90, process)
        _healthy(
            f"http://127.0.0.1:{api_env['ECOSHARE_API_METRICS_PORT']}/metrics", 30, started[-1]
        )

        # The governed flow, through the CLI against the same services.
        cli_env = service_env("ecoshare-api", fresh_kafka, tmp_path / "cli")
        cli_env["PATH"] = f"{bin_dir}:{cli_env['PATH']}"
        event_id = str(uuid.uuid4())

        def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ecoshare", *args],
                env={**cli_env, "COLUMNS": "200"},
                input=stdin,
                capture_output=True,
                text=True,
                timeout=120,
            )

        sent = cli(
            "publish",
            "StoreStatusChanged",
            "-f",
            "-",
            "--as",
            "franchise-shops",
            stdin=json.dumps(status_event(event_id, "hw-0001")) + "\n",
        )
        assert sent.returncode == 0, sent.stderr
        tail = cli("tail", "carrier-north", "StoreStatusChanged", "--max", "1", "--timeout", "90")
        assert tail.returncode == 0, tail.stderr
        delivered: list[dict[str, Any]] = [json.loads(line) for line in tail.stdout.splitlines()]
        assert [item["event_id"] for item in delivered] == [event_id]
        for process in started:
            assert process.poll() is None
    finally:
        for process in started:
            processes.stop(process, grace_seconds=20)
