"""Every topic the platform creates is as durable as the cluster allows."""

from __future__ import annotations

import pytest

from ecoshare.adapters.kafka.admin import replication_for
from ecoshare.application.provisioning import platform_topics
from ecoshare.config.settings import Settings
from ecoshare.config.topics import DAY_MS, TopicNames, TopicPolicy


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_replication_follows_the_cluster_size(brokers: int, expected: tuple[int, int]) -> None:
    assert replication_for(brokers) == expected


def test_audit_retention_is_long_by_default_and_can_be_forever() -> None:
    assert TopicPolicy().audit_retention_ms == 3650 * DAY_MS
    assert TopicPolicy(audit_retention_days=-1).audit_retention_ms == -1
    names = TopicNames("x.")
    specs = {spec.name: spec for spec in platform_topics(names, ("A",), 4, TopicPolicy())}
    assert specs[names.audit].config["retention.ms"] == str(3650 * DAY_MS)
    assert specs[names.partners].config["cleanup.policy"] == "compact"
    assert specs[names.ingress("A")].partitions == 4


def test_settings_carry_the_policy_to_every_service() -> None:
    settings = Settings(replication_factor=3, min_insync_replicas=2, audit_retention_days=30)
    assert settings.topic_policy == TopicPolicy(3, 2, 30)


def test_an_unknown_broker_is_a_named_error() -> None:
    from ecoshare.adapters.brokers import broker_kind
    from ecoshare.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="choose one of tansu, kafka"):
        broker_kind("redpanda")
