"""The schema registry as a child process, for the platform's ``up`` and for tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from ecoshare.adapters import processes
from ecoshare.registry.errors import RegistryStartError
from ecoshare.registry.store import DEFAULT_TOPIC


class RegistryProcess(processes.ChildService):
    """``python -m ecoshare.registry`` in its own process group, stopped with its parent.

    ``port=0`` takes a free port at :meth:`start`. :attr:`url` is meaningful once started.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        port: int = 0,
        host: str = "127.0.0.1",
        topic: str = DEFAULT_TOPIC,
        log_path: Path | None = None,
        startup_timeout_seconds: float = 20.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.port = port
        self.host = host
        self.topic = topic
        self.log_path = log_path
        self.startup_timeout_seconds = startup_timeout_seconds
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> RegistryProcess:
        """Spawn the registry and wait until it answers ``GET /``; RegistryStartError if not.

        The registry answers only after catching up with its topic, so once this returns
        it serves everything stored there.
        """
        if self.port == 0:
            self.port = processes.free_port(self.host)
        self._process = processes.spawn(
            [
                sys.executable,
                "-m",
                "ecoshare.registry",
                "--bootstrap-servers",
                self.bootstrap_servers,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--topic",
                self.topic,
            ],
            log_path=self.log_path,
        )
        self._wait_until_answering(self._process)
        return self

    def _wait_until_answering(self, process: subprocess.Popen[bytes]) -> None:
        where = self.log_path or "its output (pass log_path to keep it)"
        deadline = time.monotonic() + self.startup_timeout_seconds
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                code = process.poll()
                if code is not None:
                    self._process = None
                    raise RegistryStartError(
                        f"the schema registry for {self.url} exited with code {code} before "
                        f"answering; see {where}"
                    )
                try:
                    if client.get(f"{self.url}/").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RegistryStartError(
            f"the schema registry did not answer on {self.url} within "
            f"{self.startup_timeout_seconds:.0f}s (Kafka at {self.bootstrap_servers}); "
            f"see {where}"
        )
