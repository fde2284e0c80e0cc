"""Every confluent-kafka client configuration the platform uses, built in one place.

Each function returns the dict one kind of client is constructed with; callers add only
what is theirs (a group id, a transactional id) through keyword arguments or
``overrides``. Keeping the settings here means a cluster-wide change (security, client
ids, logging) is made once. The platform's clients connect in PLAINTEXT today, so no
security settings are set; they would be added to :func:`_common`.

``log_level`` 3 keeps librdkafka to errors: its connection chatter would otherwise reach
the terminal of every CLI command.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

ClientConfig = dict[str, Any]


def _common(bootstrap_servers: str, client_id: str | None, log_level: int = 3) -> ClientConfig:
    config: ClientConfig = {"bootstrap.servers": bootstrap_servers, "log_level": log_level}
    if client_id:
        config["client.id"] = client_id
    return config


def unjoined_group_id(purpose: str) -> str:
    """A fresh group id for a consumer that uses ``assign()``.

    librdkafka insists on a group id even when the consumer never joins its group; a
    unique one guarantees it can never share committed offsets with anything else.
    """
    return f"ecoshare-{purpose}-{uuid.uuid4().hex}"


def admin_config(bootstrap_servers: str, *, quiet: bool = False) -> ClientConfig:
    """An AdminClient's configuration. ``quiet`` silences librdkafka entirely, for
    waiting on a starting broker, where refused connections are expected."""
    return _common(bootstrap_servers, "ecoshare-admin", 0 if quiet else 3)


def metadata_consumer_config(bootstrap_servers: str) -> ClientConfig:
    """A consumer used only for metadata (topics, partitions, watermarks): it never
    consumes, joins or commits."""
    return {**_common(bootstrap_servers, "ecoshare-metadata"), "group.id": "ecoshare-metadata"}


def reader_config(
    bootstrap_servers: str,
    purpose: str,
    *,
    read_committed: bool,
    fetch_wait_max_ms: int = 20,
    overrides: Mapping[str, Any] | None = None,
) -> ClientConfig:
    """A consumer that reads assigned partitions from a position and reports their end.

    It joins no group and commits nothing (``assign()`` only). ``enable.partition.eof``
    is on because the end of a partition is where a fetch answer says it is: the
    embedded broker's ListOffsets under-reports after multi-record batches.
    ``read_committed`` is for topics a transaction may write (governed output: audit,
    deliveries, quarantine); the end is then the last stable offset.
    """
    config: ClientConfig = {
        **_common(bootstrap_servers, f"ecoshare-{purpose}"),
        "group.id": unjoined_group_id(purpose),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": fetch_wait_max_ms,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    }
    config.update(overrides or {})
    return config


def group_consumer_config(
    bootstrap_servers: str,
    group_id: str,
    *,
    read_committed: bool,
    session_timeout_ms: int = 6000,
    from_beginning: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> ClientConfig:
    """A consumer that joins ``group_id`` (``subscribe()``) and commits by hand."""
    config: ClientConfig = {
        **_common(bootstrap_servers, group_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    }
    config.update(overrides or {})
    return config


def producer_config(
    bootstrap_servers: str, overrides: Mapping[str, Any] | None = None
) -> ClientConfig:
    """Settings every platform producer shares: idempotent, ``acks=all``.

    ``murmur2_random`` is the Java client's partitioner, so a key lands on the same
    partition whichever client (Java, Faust, this one) writes it.
    """
    config: ClientConfig = {
        **_common(bootstrap_servers, None),
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "none",
    }
    config.update(overrides or {})
    return config


def acknowledged_writer_config(bootstrap_servers: str) -> ClientConfig:
    """The producer of :class:`~ecoshare.adapters.kafka.writer.AcknowledgedWriter`.

    One record in flight and sent at once: each produce request carries a single
    record, whose offset the embedded broker reports right (it does not for
    multi-record batches), and the writer waits for each acknowledgement anyway.
    """
    return producer_config(
        bootstrap_servers,
        {
            "client.id": "ecoshare-writer",
            "linger.ms": 0,
            "batch.num.messages": 1,
            "max.in.flight.requests.per.connection": 1,
        },
    )


def worker_producer_config(
    bootstrap_servers: str,
    *,
    transactional_id: str | None = None,
    transaction_timeout_ms: int | None = None,
) -> ClientConfig:
    """The governance worker's producer: idempotent, batched for throughput, and
    transactional when ``transactional_id`` is given."""
    config: ClientConfig = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "log_level": 3,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = transaction_timeout_ms
        # The broker finishes a commit (its markers) after answering it, and refuses
        # the next transaction's first request until then (CONCURRENT_TRANSACTIONS);
        # the default 100 ms retry backoff then made every batch wait ~100 ms. The
        # backoff still grows exponentially to retry.backoff.max.ms on real errors.
        config["retry.backoff.ms"] = 5
    return config


def worker_consumer_config(
    bootstrap_servers: str,
    group_id: str,
    *,
    session_timeout_ms: int,
    broker_assigns: bool,
) -> ClientConfig:
    """The governance worker's group consumer of the ingress topics.

    ``read_committed`` so an ingress batch a fenced producer aborted is never governed.
    ``broker_assigns`` (Apache Kafka 4) selects the KIP-848 consumer protocol: the
    broker's range assignor gives every worker a share of *each* ingress topic, sticky
    and incremental, with session and heartbeat set on the broker (group.consumer.*);
    cooperative-sticky balanced only the totals, so one worker could own every
    partition of an event type. Under KIP-848 a replacement joining with a live member's
    instance id is fenced, so there is no static membership either. Brokers without it
    (the embedded one) keep the classic protocol with cooperative-sticky: when a worker
    dies, joins or leaves, only the partitions that move stop.
    """
    group_protocol: ClientConfig = (
        {"group.protocol": "consumer", "group.remote.assignor": "range"}
        if broker_assigns
        else {
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    return {
        **group_protocol,
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": 300_000,
        "fetch.min.bytes": 1,
        # The broker answers a fetch as soon as one record is there; the wait only
        # bounds how often an idle worker asks (every 5 ms cost the embedded broker
        # about 10x the CPU of every 100 ms, measured on an idle partition).
        "fetch.wait.max.ms": 100,
        "queued.max.messages.kbytes": 262_144,
        "isolation.level": "read_committed",
        "log_level": 3,
    }
