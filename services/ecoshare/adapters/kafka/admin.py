"""Topic creation and cluster readiness, translated into the platform's errors."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from ecoshare.adapters.brokers import BrokerKind
from ecoshare.adapters.kafka.config import admin_config
from ecoshare.config.topics import TopicPolicy
from ecoshare.errors import BrokerUnavailableError, TopicCreationError


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the platform needs: name, partitions and topic-level config."""

    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)

    @classmethod
    def compacted(cls, name: str, partitions: int = 1) -> TopicSpec:
        return cls(name, partitions, {"cleanup.policy": "compact"})


def admin_client(bootstrap_servers: str, *, quiet: bool = False) -> AdminClient:
    # While waiting for a starting broker, refused connections are expected: keep quiet.
    return AdminClient(admin_config(bootstrap_servers, quiet=quiet))


def wait_for_cluster(bootstrap_servers: str, *, timeout_seconds: float = 20.0) -> None:
    """Block until the cluster answers a metadata request, or raise BrokerUnavailableError."""
    admin = admin_client(bootstrap_servers, quiet=True)
    deadline = time.monotonic() + timeout_seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException as exc:
            last_error = exc
            time.sleep(0.05)
    raise BrokerUnavailableError(
        f"Kafka at {bootstrap_servers} did not answer within {timeout_seconds:.0f}s"
        f" ({last_error}); check ECOSHARE_BOOTSTRAP_SERVERS or the broker log."
    )


def cluster_broker_kind(bootstrap_servers: str, *, timeout_seconds: float = 10.0) -> BrokerKind:
    """Which broker serves ``bootstrap_servers``: the embedded one or Apache Kafka.

    The embedded broker names its cluster "tansu_cluster"; anything else is taken for
    Apache Kafka (or a broker that behaves like it).
    """
    admin = admin_client(bootstrap_servers)  # must outlive the future it answers
    try:
        description = admin.describe_cluster(request_timeout=timeout_seconds)
        cluster_id = str(description.result(timeout=timeout_seconds).cluster_id or "")
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"Kafka at {bootstrap_servers} did not describe its cluster ({exc})"
        ) from exc
    return "tansu" if cluster_id.startswith("tansu") else "kafka"


def broker_has_transactions(bootstrap_servers: str, *, timeout_seconds: float = 10.0) -> bool:
    """Whether the cluster commits transactions (Apache Kafka) or not (the embedded broker).

    The embedded broker accepts transactional requests but delivers nothing a
    transaction wrote, so asking it would mislead.
    """
    return cluster_broker_kind(bootstrap_servers, timeout_seconds=timeout_seconds) == "kafka"


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) the platform gives a topic on ``brokers``.

    Three copies where there are three brokers, and a write needs two of them, so one
    broker may fail without losing an acknowledged record or stopping writes.
    """
    replication = max(1, min(3, brokers))
    return replication, (2 if replication >= 3 else 1)


def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    policy: TopicPolicy | None = None,
    timeout_seconds: float = 15.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Idempotent.

    Every topic gets the same replication factor and ``min.insync.replicas``: those of
    ``policy``, else :func:`replication_for` the cluster's size (so a topic created by a
    worker, the API or the registry is as durable as one created by ``ecoshare up``).
    """
    admin = admin_client(bootstrap_servers)
    metadata = admin.list_topics(timeout=timeout_seconds)
    existing = set(metadata.topics)
    wanted = [spec for spec in specs if spec.name not in existing]
    if not wanted:
        return []
    policy = policy or TopicPolicy()
    replication = policy.replication_factor or replication_for(len(metadata.brokers))[0]
    min_insync = policy.min_insync_replicas or replication_for(replication)[1]
    # Brokers default min.insync.replicas to 1; only say otherwise when it matters, so
    # single-node brokers that know no topic configs are not sent one.
    extra = {"min.insync.replicas": str(min_insync)} if min_insync > 1 else {}
    futures = admin.create_topics(
        [
            NewTopic(spec.name, spec.partitions, replication, config=extra | dict(spec.config))
            for spec in wanted
        ],
        operation_timeout=timeout_seconds,
        request_timeout=timeout_seconds,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TopicCreationError(f"could not create topic {name!r}: {exc}") from exc
    _wait_for_metadata(admin, created, timeout_seconds)
    return created


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while names and time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_seconds).topics
        if all(name in topics and not topics[name].error for name in names):
            return
        time.sleep(0.05)
