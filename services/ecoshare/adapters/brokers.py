"""The local brokers the platform can start, behind one small interface.

``tansu`` (the embedded broker: one binary, memory storage, no JVM) or ``kafka`` (Apache
Kafka in KRaft mode from Maven jars: durable storage, transactions, replication), or
``auto``: Apache Kafka where it can run (a Java runtime, and its jars cached or Maven to
fetch them), tansu otherwise. See README "Brokers" for when to use which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, get_args

from ecoshare.errors import BrokerStartError, ConfigurationError

BrokerKind = Literal["tansu", "kafka"]
BROKER_KINDS: tuple[str, ...] = get_args(BrokerKind)
BrokerChoice = Literal["auto", "tansu", "kafka"]
BROKER_CHOICES: tuple[str, ...] = get_args(BrokerChoice)


class LocalBroker(Protocol):
    """What the platform and the tests need of a broker they started."""

    name: str

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def replication_factor(self) -> int: ...

    @property
    def min_insync_replicas(self) -> int: ...

    def start(self) -> LocalBroker: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...


def broker_kind(value: str) -> BrokerKind:
    """``value`` as a broker kind, or ConfigurationError naming the choices."""
    if value not in BROKER_KINDS:
        raise ConfigurationError(
            f"unknown broker {value!r}: choose one of {', '.join(BROKER_KINDS)}"
        )
    return value  # type: ignore[return-value]


def broker_choice(value: str) -> BrokerChoice:
    """``value`` as a broker choice (a kind or ``auto``), or ConfigurationError naming them."""
    if value not in BROKER_CHOICES:
        raise ConfigurationError(
            f"unknown broker {value!r}: choose one of {', '.join(BROKER_CHOICES)}"
        )
    return value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class BrokerDecision:
    """The broker a platform starts, and why (one line, logged at start)."""

    kind: BrokerKind
    reason: str

    def __str__(self) -> str:
        return f"broker {self.kind}: {self.reason}"


def decide_broker(
    requested: BrokerChoice, *, java: str | None, jars_problem: str | None
) -> BrokerDecision:
    """Which broker ``requested`` means here.

    ``java`` is the Java runtime found (None: none); ``jars_problem`` why the Kafka jars
    cannot be had (None: cached, or fetched just now). A forced kind is kept as it is;
    starting it then says what is missing.
    """
    if requested != "auto":
        return BrokerDecision(requested, "asked for (--broker / ECOSHARE_BROKER)")
    if java is None:
        return BrokerDecision(
            "tansu",
            "no Java runtime on PATH, so not Apache Kafka; the embedded broker keeps "
            "everything in memory and is for trying the platform, not for sustained load",
        )
    if jars_problem is not None:
        return BrokerDecision("tansu", f"Java found but {jars_problem}")
    return BrokerDecision(
        "kafka",
        f"a Java runtime ({java}) and the Kafka jars are here; Apache Kafka holds "
        "sustained load and keeps its data across restarts (--broker tansu for the "
        "embedded one)",
    )


def choose_broker(requested: BrokerChoice) -> BrokerDecision:
    """:func:`decide_broker` on this machine: looks for Java and the Kafka jars (fetching
    the jars with Maven once if Java is there and they are not cached yet)."""
    if requested != "auto":
        return decide_broker(requested, java=None, jars_problem=None)
    from ecoshare.adapters.kafka_broker import java_binary, resolve_kafka_jars

    try:
        java = java_binary()
    except BrokerStartError:
        java = None
    jars_problem = None
    if java is not None:
        try:
            resolve_kafka_jars()
        except BrokerStartError as exc:
            jars_problem = str(exc).split(";")[0]
    return decide_broker(requested, java=java, jars_problem=jars_problem)


def local_broker(
    kind: BrokerKind,
    *,
    logs_dir: Path,
    data_dir: Path | None = None,
    port: int = 0,
    nodes: int = 1,
) -> LocalBroker:
    """A broker of ``kind``, not started yet.

    ``data_dir`` is where Kafka keeps its logs across restarts; tansu keeps everything
    in memory and refuses one, so nobody believes their data survives a restart.
    """
    if kind == "tansu":
        if data_dir is not None:
            raise ConfigurationError(
                "the tansu broker keeps everything in memory; a data directory needs --broker kafka"
            )
        if nodes != 1:
            raise ConfigurationError("the tansu broker runs one node; several need --broker kafka")
        from ecoshare.adapters.embedded_broker import EmbeddedBroker

        return EmbeddedBroker(port=port, log_path=logs_dir / "broker.log")
    from ecoshare.adapters.kafka_broker import KafkaCluster

    if port:
        raise ConfigurationError("ECOSHARE_BROKER_PORT applies to tansu; Kafka takes free ports")
    return KafkaCluster(
        data_dir=data_dir or logs_dir.parent / "kafka-data", nodes=nodes, log_dir=logs_dir
    )
