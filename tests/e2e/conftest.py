"""End-to-end fixtures: the platform as a user runs it, and the CLI as a user types it.

``ecoshare up`` runs as a child process with its own state directory; commands run as
``python -m ecoshare.cli.main ...`` child processes against it, exactly like a shell
whose output is piped (not a terminal) into a narrow window: 60 columns.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

STARTUP_SECONDS = 90.0


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class RunningPlatform:
    """A platform started by ``ecoshare up``; ``cli`` runs commands against it."""

    state_dir: Path
    env: dict[str, str]
    endpoints: dict[str, Any]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def api_url(self) -> str:
        return str(self.endpoints["api_url"])

    @property
    def bootstrap_servers(self) -> str:
        return str(self.endpoints["bootstrap_servers"])

    @property
    def registry_url(self) -> str:
        return str(self.endpoints["schema_registry_url"])

    @property
    def operator_key(self) -> str:
        return str(json.loads((self.state_dir / "secrets.json").read_text())["operator_key"])

    @property
    def signing_secret(self) -> bytes:
        secrets = json.loads((self.state_dir / "secrets.json").read_text())
        return str(secrets["signing_secret"]).encode()

    def sh(self, command: str, **options: Any) -> CliResult:
        """Run ``ecoshare <command>``, split like a shell would."""
        return self.cli(*shlex.split(command), **options)

    def cli(
        self,
        *args: str,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "ecoshare.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, "COLUMNS": "60", **(env or {})},
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)


def start_platform(
    state_dir: Path, broker: str, extra_env: Mapping[str, str] | None = None
) -> RunningPlatform:
    env = {
        **os.environ,
        "ECOSHARE_BROKER": broker,
        "ECOSHARE_STATE_DIR": str(state_dir),
        "ECOSHARE_WORKERS": "1",
        "ECOSHARE_API_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(extra_env or {}),
    }
    for name in ("ECOSHARE_BOOTSTRAP_SERVERS", "ECOSHARE_SCHEMA_REGISTRY_URL"):
        env.pop(name, None)
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir.parent / f"{state_dir.name}-up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ecoshare.cli.main", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    endpoints_file = state_dir / "endpoints.json"
    deadline = time.monotonic() + STARTUP_SECONDS
    while not endpoints_file.exists():
        if process.poll() is not None:
            raise RuntimeError(f"`ecoshare up` exited:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.send_signal(signal.SIGTERM)
            raise RuntimeError(f"`ecoshare up` did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    endpoints = json.loads(endpoints_file.read_text())
    assert endpoints["broker"] == broker
    httpx.get(f"{endpoints['api_url']}/healthz", timeout=10).raise_for_status()
    return RunningPlatform(state_dir, env, endpoints, process, log)


def stop_platform(platform: RunningPlatform) -> None:
    if platform.process.poll() is None:
        platform.process.send_signal(signal.SIGTERM)
        try:
            platform.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            platform.process.kill()
            platform.process.wait(timeout=10)


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, broker_kind: str
) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("e2e") / "state", broker_kind)
    try:
        yield running
    finally:
        stop_platform(running)


def wait_until(condition: Any, what: str, timeout: float = 45.0, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)
