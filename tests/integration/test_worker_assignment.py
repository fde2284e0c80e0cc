"""How the workers of one deployment share the ingress partitions, on a real broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from ecoshare.config.topics import EVENT_TYPES
from tests.integration.governed_platform import PARTITIONS, GovernedPlatform

Assignment = dict[str, set[tuple[str, int]]]


def _assignment(admin: AdminClient, group: str) -> Assignment:
    """Each member's (topic, partition)s, as the group coordinator describes them."""
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        member.member_id: {
            (tp.topic, tp.partition)
            for tp in (member.assignment.topic_partitions if member.assignment else [])
        }
        for member in description.members
    }


@pytest.mark.brokers("kafka")
def test_two_workers_each_own_partitions_of_every_ingress_topic(
    broker_kind: str, bootstrap_servers: str, registry_url: str, tmp_path: Path
) -> None:
    platform = GovernedPlatform.prepare(bootstrap_servers, registry_url, tmp_path)
    ingress = {platform.names.ingress(event_type) for event_type in EVENT_TYPES}
    every_partition = {(topic, p) for topic in ingress for p in range(PARTITIONS)}
    group = f"{platform.names.prefix}ecoshare-governance"
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 3})
    workers = [platform.worker(index).start(wait=False) for index in range(2)]
    try:
        for worker in workers:
            worker.wait_until_serving()
        deadline = time.monotonic() + 60
        while True:
            assignment = _assignment(admin, group)
            owned = list(assignment.values())
            settled = len(owned) == 2 and set().union(*owned) == every_partition
            if settled and all(
                {topic for topic, _ in partitions} == ingress for partitions in owned
            ):
                break
            assert time.monotonic() < deadline, (
                f"after 60 s the {broker_kind} group assigns: "
                + "; ".join(
                    f"{member}: {sorted({t.rsplit('.', 1)[-1] for t, _ in parts})}"
                    for member, parts in assignment.items()
                )
            )
            time.sleep(0.5)
    finally:
        for worker in workers:
            worker.stop()
    first, second = owned
    assert not first & second, "a partition is owned by both workers"
    for topic in ingress:
        shares = sorted(len({p for t, p in parts if t == topic}) for parts in owned)
        assert shares == [PARTITIONS // 2, PARTITIONS // 2], (topic, shares)
