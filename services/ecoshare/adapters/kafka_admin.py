"""Topic creation and cluster readiness, translated into the platform's errors."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

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
    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0 if quiet else 3})


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


def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    timeout_seconds: float = 15.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Idempotent."""
    admin = admin_client(bootstrap_servers)
    existing = set(admin.list_topics(timeout=timeout_seconds).topics)
    wanted = [spec for spec in specs if spec.name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(spec.name, spec.partitions, replication_factor, config=dict(spec.config))
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


def partition_count(bootstrap_servers: str, topic: str, timeout_seconds: float = 10.0) -> int:
    metadata = admin_client(bootstrap_servers).list_topics(topic, timeout=timeout_seconds)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise TopicCreationError(f"topic {topic!r} does not exist")
    return len(found.partitions)
