"""Faults and liveness: workers and brokers fail mid-stream; nothing is lost or repeated.

On Apache Kafka the faults run against a three-node cluster (replication factor 3,
``min.insync.replicas=2``), one for the whole module; on the embedded broker against
the session's. For every fault: each event reaches each subscriber exactly once, in
per-key order, with exactly one audit decision per (event, subscriber). The longest
time a partition delivered nothing while the stream went on is reported (see the
"partition pauses" section of the test summary), not asserted: tests never assert on
wall-clock speed.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from ecoshare.adapters.kafka.reading import header_map
from ecoshare.adapters.kafka_broker import KafkaCluster
from ecoshare.config.topics import TopicNames
from ecoshare.governance.progress import EVENT_ID_HEADER
from ecoshare.governance.supervisor import WorkerProcess
from ecoshare.registry.process import RegistryProcess
from tests.integration.faults import PAUSES, PartitionPause
from tests.integration.governed_platform import (
    GovernedPlatform,
    audit_decisions,
    put_north_and_south,
    store_status,
)

TYPE = "StoreStatusChanged"
# A three-node cluster and a 50,000-event stream on a shared 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SESSION_TIMEOUT_SECONDS = 6.0  # the workers' consumer session timeout


@dataclass
class Cluster:
    kind: str
    bootstrap_servers: str
    registry_url: str
    kafka: KafkaCluster | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}, {len(self.kafka.members)} nodes" if self.kafka else self.kind


@pytest.fixture(scope="module")
def cluster(
    broker_kind: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    if broker_kind == "tansu":
        yield Cluster(
            broker_kind,
            request.getfixturevalue("bootstrap_servers"),
            request.getfixturevalue("registry_url"),
        )
        return
    base = tmp_path_factory.mktemp("three-nodes")
    # Three JVMs registering on a shared, loaded 2-core machine have taken over 90 s.
    with (
        KafkaCluster(
            data_dir=base / "data", nodes=3, heap="320m", startup_timeout_seconds=300
        ) as kafka,
        RegistryProcess(
            bootstrap_servers=kafka.bootstrap_servers,
            topic="_schemas-faults",
            log_path=base / "registry.log",
        ) as registry,
    ):
        yield Cluster(broker_kind, kafka.bootstrap_servers, registry.url, kafka)


@pytest.fixture
def platform(cluster: Cluster, tmp_path: Path) -> GovernedPlatform:
    governed = GovernedPlatform.prepare(cluster.bootstrap_servers, cluster.registry_url, tmp_path)
    put_north_and_south(governed)
    return governed


@dataclass
class Arrivals:
    """What a subscriber received, read live: event ids, keys, and per-partition times."""

    # (event id, key, partition, seconds the worker produced it, seconds it arrived)
    received: list[tuple[str, bytes, int, float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def longest_pause(self, *, as_seen: bool = False) -> tuple[int, float]:
        """(partition, seconds): the longest gap between two deliveries of a partition.

        By the time the worker produced them (the record timestamp): how long the
        partition made no progress. ``as_seen``: by the time the reader got them, which
        adds what kept them invisible (an open transaction of a killed worker) but hides
        pauses while the reader itself is behind.
        """
        by_partition: dict[int, list[float]] = {}
        for _, _, partition, produced, arrived in self.received:
            by_partition.setdefault(partition, []).append(arrived if as_seen else produced)
        worst = (-1, 0.0)
        for partition, times in by_partition.items():
            times.sort()
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            if gaps and max(gaps) > worst[1]:
                worst = (partition, max(gaps))
        return worst


def _follow(platform: GovernedPlatform, subscriber_id: str, arrivals: Arrivals) -> None:
    """Read a subscriber's deliveries as a read_committed consumer that commits nothing
    (the SDK commits after every record, which would make the reader the bottleneck)."""
    consumer = Consumer(
        {
            "bootstrap.servers": platform.bootstrap_servers,
            "group.id": f"follow-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 3,
        }
    )
    consumer.subscribe([platform.names.delivery(subscriber_id, TYPE)])
    try:
        while not arrivals.stop.is_set():
            for message in consumer.consume(1000, 0.1):
                if message.error() is not None:
                    continue
                headers = header_map(message.headers())
                arrivals.received.append(
                    (
                        headers[EVENT_ID_HEADER].decode(),
                        message.key() or b"",
                        message.partition() or 0,
                        message.timestamp()[1] / 1000,
                        time.monotonic(),
                    )
                )
    finally:
        consumer.close()


Fault = tuple[float, Callable[[list[WorkerProcess]], None]]


def run_stream(
    platform: GovernedPlatform,
    cluster: Cluster,
    fault_name: str,
    count: int,
    faults: list[Fault],
    *,
    workers: int = 2,
    rate_per_second: float = 2500.0,
) -> None:
    """Publish ``count`` events at a steady rate, firing each fault when its share of the
    stream is published, then check exactly-once, order and audit, and report pauses."""
    events = [
        store_status(n, postal_code="5611 AB" if n % 2 else "1012 AB", subject=None)
        for n in range(1, count + 1)
    ]
    running = [platform.worker(index).start() for index in range(workers)]
    north, south = Arrivals(), Arrivals()
    followers = [
        threading.Thread(target=_follow, args=(platform, name, arrivals), daemon=True)
        for name, arrivals in (("carrier-north", north), ("carrier-south", south))
    ]
    for follower in followers:
        follower.start()
    pending = sorted(faults, key=lambda fault: fault[0])
    try:
        with platform.publisher("postnl") as publisher:
            started = time.monotonic()
            chunk = 250
            for index in range(0, count, chunk):
                for event in events[index : index + chunk]:
                    publisher.publish(event, TYPE)
                publisher.flush()
                while pending and (index + chunk) / count >= pending[0][0]:
                    pending.pop(0)[1](running)
                ahead = started + (index + chunk) / rate_per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        deadline = time.monotonic() + 180
        south_expected = sum(1 for e in events if e["postal_code"].startswith("5"))
        while len(north.received) < count or len(south.received) < south_expected:
            assert time.monotonic() < deadline, (
                f"{fault_name}: {count - len(north.received)} events not delivered to "
                f"carrier-north in time"
            )
            time.sleep(0.2)
        time.sleep(2.0)  # room for a duplicate to show up
    finally:
        north.stop.set()
        south.stop.set()
        for follower in followers:
            follower.join(10)
        for worker in running:
            worker.stop()

    partition, pause = north.longest_pause()
    _, seen_pause = north.longest_pause(as_seen=True)
    PAUSES.append(PartitionPause(cluster.label, fault_name, partition, pause, seen_pause, count))
    expected = {e["event_id"] for e in events}
    north_ids = Counter(event_id for event_id, *_ in north.received)
    south_ids = Counter(event_id for event_id, *_ in south.received)
    assert set(north_ids) == expected
    assert max(north_ids.values()) == 1, "an event reached carrier-north twice"
    assert set(south_ids) == {e["event_id"] for e in events if e["postal_code"].startswith("5")}
    assert max(south_ids.values()) == 1, "an event reached carrier-south twice"
    positions = {e["event_id"]: n for n, e in enumerate(events)}
    by_key: dict[bytes, list[int]] = {}
    for event_id, key, *_ in north.received:
        by_key.setdefault(key, []).append(positions[event_id])
    assert all(seq == sorted(seq) for seq in by_key.values()), "per-key order broken"
    decisions = audit_decisions(platform, 10)
    assert len(decisions) == 2 * count
    assert max(decisions.values()) == 1, "an (event, subscriber) was audited twice"


def _kill_and_restart(index: int) -> Callable[[list[WorkerProcess]], None]:
    def fault(workers: list[WorkerProcess]) -> None:
        workers[index].kill()
        workers[index].start(wait=False)

    return fault


def test_a_worker_sigkilled_three_times_in_50000_events(
    platform: GovernedPlatform, cluster: Cluster
) -> None:
    run_stream(
        platform,
        cluster,
        "SIGKILL x3 (restarted at once)",
        50_000,
        [(0.2, _kill_and_restart(0)), (0.45, _kill_and_restart(1)), (0.7, _kill_and_restart(0))],
    )


@pytest.mark.brokers("kafka")  # tansu has no transactions to fence a zombie with (README)
def test_a_zombie_worker_paused_past_its_session_timeout_is_fenced(
    platform: GovernedPlatform, cluster: Cluster
) -> None:
    def pause_then_resume(workers: list[WorkerProcess]) -> None:
        pid = workers[0].pid
        assert pid is not None
        os.killpg(pid, signal.SIGSTOP)

        def resume() -> None:
            time.sleep(SESSION_TIMEOUT_SECONDS * 2)
            os.killpg(pid, signal.SIGCONT)

        threading.Thread(target=resume, daemon=True).start()

    run_stream(
        platform,
        cluster,
        "SIGSTOP past session timeout, SIGCONT",
        10_000,
        [(0.3, pause_then_resume)],
    )


def test_a_worker_restarted_by_sigterm(platform: GovernedPlatform, cluster: Cluster) -> None:
    def restart(workers: list[WorkerProcess]) -> None:
        workers[0].stop()
        workers[0].start(wait=False)

    run_stream(platform, cluster, "SIGTERM restart", 10_000, [(0.3, restart)])


def test_a_worker_added_mid_stream(platform: GovernedPlatform, cluster: Cluster) -> None:
    def add(workers: list[WorkerProcess]) -> None:
        workers.append(platform.worker(len(workers)).start(wait=False))

    run_stream(platform, cluster, "worker added", 10_000, [(0.3, add)], workers=1)


@pytest.mark.brokers("kafka")
def test_a_kafka_node_sigkilled_then_restarted(
    platform: GovernedPlatform, cluster: Cluster
) -> None:
    kafka = cluster.kafka
    assert kafka is not None
    victim = 2  # not the one a fresh client bootstraps from first

    def kill_node(workers: list[WorkerProcess]) -> None:
        kafka.members[victim].kill()

    def restart_node(workers: list[WorkerProcess]) -> None:
        kafka.restart_node(victim)

    run_stream(
        platform,
        cluster,
        "Kafka node SIGKILL, restarted",
        10_000,
        [(0.25, kill_node), (0.7, restart_node)],
    )
    assert kafka.alive()


@pytest.mark.brokers("kafka")
def test_every_topic_the_platform_creates_is_replicated_with_two_in_sync(
    cluster: Cluster, topic_names: TopicNames
) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    from ecoshare.application.provisioning import provision_topics
    from ecoshare.config.topics import TopicPolicy

    created = provision_topics(
        cluster.bootstrap_servers, topic_names, (TYPE,), 4, TopicPolicy(audit_retention_days=400)
    )
    assert topic_names.audit in created and topic_names.progress in created
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    metadata = admin.list_topics(timeout=10).topics
    for name in created:
        replicas = {len(p.replicas) for p in metadata[name].partitions.values()}
        assert replicas == {3}, name
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in created]
    configs = {
        resource.name: future.result()
        for resource, future in admin.describe_configs(resources).items()
    }
    assert {configs[name]["min.insync.replicas"].value for name in created} == {"2"}
    assert configs[topic_names.audit]["retention.ms"].value == str(400 * 86_400_000)
