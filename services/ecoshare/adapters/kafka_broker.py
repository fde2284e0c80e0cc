"""Apache Kafka as a broker the platform starts: KRaft in combined mode, from Maven jars.

The broker runs the way the Kafka distribution's own scripts run it: the storage tool
formats each node's log directory once, then ``kafka.Kafka server.properties`` starts
it. The jars are resolved by Maven from ``deploy/kafka/local/pom.xml`` into a cache
outside the work tree (``~/.cache/ecoshare/kafka-<version>/jars``), so the only system
requirements are a Java runtime and, on the first start, Maven.

One node by default; three on request (controller quorum of three, replication factor 3,
``min.insync.replicas=2``). The data directory survives a restart: a node whose log
directory is already formatted is started as it is, on fresh free ports (clients learn
the ports from the platform, and the controller quorum from the configuration).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException

from ecoshare.adapters import processes
from ecoshare.adapters.kafka.admin import admin_client, wait_for_cluster
from ecoshare.errors import BrokerStartError, BrokerUnavailableError

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "local" / "pom.xml"
_CLUSTER_FILE = "cluster.json"
_RESOLVED_MARKER = ".resolved"

# Warnings only, except the line that says a node is up: the broker logs a lot.
_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ecoshare" / f"kafka-{KAFKA_VERSION}"


def java_binary() -> str:
    """The ``java`` to run the broker with, or BrokerStartError in one line."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is not None and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerStartError(
            "--broker kafka needs a Java runtime (17 or newer) on PATH and none was found; "
            "install one (e.g. apt-get install openjdk-17-jre-headless) or use --broker tansu"
        )
    return found


def resolve_kafka_jars(cache_dir: Path | None = None) -> Path:
    """The directory of the broker's jars, resolving them with Maven on first use."""
    jars = (cache_dir or default_cache_dir()) / "jars"
    if (jars / _RESOLVED_MARKER).exists():
        return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerStartError(
            f"the Kafka {KAFKA_VERSION} jars are not in {jars} and Maven (`mvn`) is not on "
            "PATH to fetch them; install Maven once or use --broker tansu"
        )
    staging = jars.with_name(f"jars.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise BrokerStartError(
            f"Maven could not resolve the Kafka {KAFKA_VERSION} jars: {' | '.join(tail)}"
        )
    (staging / _RESOLVED_MARKER).write_text(KAFKA_VERSION + "\n")
    if jars.exists() and not (jars / _RESOLVED_MARKER).exists():
        shutil.rmtree(jars, ignore_errors=True)  # an interrupted earlier resolution
    try:
        staging.rename(jars)
    except OSError:
        # Another process resolved them meanwhile; either copy is complete.
        shutil.rmtree(staging, ignore_errors=True)
    return jars


def _new_cluster_id() -> str:
    """A KRaft cluster id: a base64url UUID that, like Kafka's own, never starts with
    "-" (the storage tool would read it as an option)."""
    while True:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaNode(processes.ChildService):
    """One KRaft node (broker and controller in one JVM) of a :class:`KafkaCluster`."""

    node_id: int
    data_dir: Path
    host: str = "127.0.0.1"
    broker_port: int = 0
    controller_port: int = 0
    log_path: Path | None = None
    heap: str = "384m"
    _process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_server(self) -> str:
        return f"{self.host}:{self.broker_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / f"node-{self.node_id}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.properties"

    def formatted(self) -> bool:
        return (self.log_dir / "meta.properties").exists()

    def write_properties(self, voters: str, settings: dict[str, str]) -> None:
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.broker_port},"
                f"CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.broker_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dir),
            **settings,
        }
        self.properties_path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def java_command(self, jars: Path, main: str, *args: str) -> list[str]:
        return [
            java_binary(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseSerialGC",
            # C1 only: a local broker spends most of its start compiling; C2 buys little here.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
            "-cp",
            f"{jars}/*",
            main,
            *args,
        ]

    def start(self) -> KafkaNode:
        jars = resolve_kafka_jars()
        java_binary()
        self._process = processes.spawn(
            self.java_command(jars, "kafka.Kafka", str(self.properties_path)),
            log_path=self.log_path,
        )
        return self

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def suspend(self) -> None:
        """SIGSTOP the node (a frozen JVM, as in a long GC pause); :meth:`resume` undoes."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGCONT)


@dataclass
class KafkaCluster:
    """A local Apache Kafka cluster of ``nodes`` KRaft nodes in ``data_dir``."""

    data_dir: Path
    nodes: int = 1
    host: str = "127.0.0.1"
    log_dir: Path | None = None
    heap: str = "384m"
    startup_timeout_seconds: float = 90.0
    members: list[KafkaNode] = field(default_factory=list)
    name: str = "kafka"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_server for node in self.members)

    @property
    def replication_factor(self) -> int:
        """Replication of the platform's topics: every node, at most three."""
        return min(self.nodes, 3)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.replication_factor >= 3 else 1

    def broker_settings(self) -> dict[str, str]:
        replication = str(self.replication_factor)
        return {
            "num.partitions": "1",
            "default.replication.factor": replication,
            "min.insync.replicas": str(self.min_insync_replicas),
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": str(self.min_insync_replicas),
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": str(self.min_insync_replicas),
            # The platform creates every topic it uses, with the settings it needs.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            # Fault tests pause a broker for seconds; let the others notice within them.
            "broker.session.timeout.ms": "6000",
            "broker.heartbeat.interval.ms": "1000",
            "replica.lag.time.max.ms": "10000",
            # Consumers of the KIP-848 protocol (the workers) get their session and
            # heartbeat from the broker: 6 s and 1 s, as the classic consumers ask for
            # (the defaults, 45 s and 5 s, would leave a dead worker's partitions idle
            # for 45 s).
            "group.consumer.min.session.timeout.ms": "6000",
            "group.consumer.session.timeout.ms": "6000",
            "group.consumer.min.heartbeat.interval.ms": "1000",
            "group.consumer.heartbeat.interval.ms": "1000",
            # A killed worker's open transaction blocks read_committed readers of its
            # outputs until aborted; look for timed-out ones every second, not every 10.
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
        }

    def _cluster_id(self) -> str:
        path = self.data_dir / _CLUSTER_FILE
        if path.exists():
            recorded = json.loads(path.read_text())
            if int(recorded["nodes"]) != self.nodes:
                raise BrokerStartError(
                    f"{self.data_dir} holds a {recorded['nodes']}-node Kafka cluster, not "
                    f"{self.nodes}; use another --data-dir"
                )
            return str(recorded["cluster_id"])
        cluster_id = _new_cluster_id()
        path.write_text(json.dumps({"cluster_id": cluster_id, "nodes": self.nodes}) + "\n")
        return cluster_id

    def start(self) -> KafkaCluster:
        java_binary()
        jars = resolve_kafka_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "log4j2.yaml").write_text(_LOG4J2)
        cluster_id = self._cluster_id()
        log_dir = self.log_dir or self.data_dir
        self.members = [
            KafkaNode(
                node_id=index + 1,
                data_dir=self.data_dir,
                host=self.host,
                broker_port=processes.free_port(self.host),
                controller_port=processes.free_port(self.host),
                log_path=log_dir / f"kafka-{index + 1}.log",
                heap=self.heap,
            )
            for index in range(self.nodes)
        ]
        voters = ",".join(
            f"{node.node_id}@{node.host}:{node.controller_port}" for node in self.members
        )
        settings = self.broker_settings()
        formatting = []
        for node in self.members:
            node.write_properties(voters, settings)
            if not node.formatted():
                command = node.java_command(
                    jars,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "--config",
                    str(node.properties_path),
                    "--ignore-formatted",
                )
                formatter = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
                formatting.append((node, formatter))
        for node, formatter in formatting:
            output, _ = formatter.communicate(timeout=120)
            if formatter.returncode != 0:
                raise BrokerStartError(
                    f"formatting Kafka node {node.node_id} in {node.log_dir} failed: "
                    f"{output.decode(errors='replace').strip().splitlines()[-1:]}"
                )
        try:
            for node in self.members:
                node.start()
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_ready(self, timeout_seconds: float | None = None) -> None:
        """Block until every node is a registered broker of the cluster.

        Topics replicated to every node can only be created once all of them registered,
        so answering metadata requests is not enough.
        """
        deadline = time.monotonic() + (timeout_seconds or self.startup_timeout_seconds)
        wanted = {node.node_id for node in self.members if node.alive()}
        while True:
            for node in self.members:
                code = node.exit_code()
                if code is not None and node.node_id in wanted:
                    raise BrokerStartError(
                        f"Kafka node {node.node_id} exited with code {code}; see {node.log_path}"
                    )
            try:
                wait_for_cluster(self.bootstrap_servers, timeout_seconds=2.0)
                registered = set(
                    admin_client(self.bootstrap_servers, quiet=True)
                    .list_topics(timeout=2.0)
                    .brokers
                )
                if wanted <= registered:
                    return
            except (BrokerUnavailableError, KafkaException):
                pass
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"Kafka on {self.bootstrap_servers} did not register nodes "
                    f"{sorted(wanted)} in time; see {self.data_dir}"
                )
            time.sleep(0.2)

    def restart_node(self, index: int) -> None:
        """Start a stopped or killed node again, on the ports it had."""
        node = self.members[index]
        node.start()
        self.wait_until_ready()

    def alive(self) -> bool:
        return bool(self.members) and all(node.alive() for node in self.members)

    def stop(self) -> None:
        # All at once: a node stopped alone waits for a controller quorum the others
        # would leave with it.
        for node in self.members:
            if node.alive() and node.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.pid, signal.SIGTERM)
        for node in self.members:
            node.stop_grace_seconds = 20.0
            node.stop()

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # `make kafka-jars`
    print(resolve_kafka_jars())
