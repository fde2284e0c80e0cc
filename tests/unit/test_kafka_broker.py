"""The local Apache Kafka broker's set-up decisions, without starting a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecoshare.adapters.brokers import local_broker
from ecoshare.adapters.kafka_broker import KafkaCluster, _new_cluster_id, java_binary
from ecoshare.errors import BrokerStartError, ConfigurationError


def test_cluster_ids_are_22_base64url_characters_never_starting_with_a_dash() -> None:
    ids = [_new_cluster_id() for _ in range(2000)]
    assert all(len(cluster_id) == 22 for cluster_id in ids)
    assert not any(cluster_id.startswith("-") for cluster_id in ids)


def test_three_nodes_replicate_three_times_with_two_in_sync(tmp_path: Path) -> None:
    cluster = KafkaCluster(data_dir=tmp_path, nodes=3)
    settings = cluster.broker_settings()
    assert (cluster.replication_factor, cluster.min_insync_replicas) == (3, 2)
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["transaction.state.log.min.isr"] == "2"
    assert settings["auto.create.topics.enable"] == "false"


def test_tansu_refuses_a_data_directory_and_several_nodes(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="keeps everything in memory"):
        local_broker("tansu", logs_dir=tmp_path, data_dir=tmp_path / "data")
    with pytest.raises(ConfigurationError, match="one node"):
        local_broker("tansu", logs_dir=tmp_path, nodes=3)


def test_no_java_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerStartError, match=r"needs a Java runtime.*--broker tansu"):
        java_binary()
