"""The local brokers the platform can start, behind one small interface.

``tansu`` (the embedded broker: one binary, memory storage, no JVM) or ``kafka`` (Apache
Kafka in KRaft mode from Maven jars: durable storage, transactions, replication). See
README "Brokers" for when to use which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, get_args

from ecoshare.errors import ConfigurationError

BrokerKind = Literal["tansu", "kafka"]
BROKER_KINDS: tuple[str, ...] = get_args(BrokerKind)


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
