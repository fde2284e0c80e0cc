"""The bootstrap builds a worker's whole configuration from the settings, once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ecoshare.application.bootstrap import (
    load_settings,
    platform_connection,
    worker_config,
    worker_runtime,
)
from ecoshare.config.settings import Settings
from ecoshare.config.topics import TopicNames, TopicPolicy
from ecoshare.errors import ConfigurationError
from ecoshare.governance.worker import client_configs
from tests.strategies import CATALOG


def _settings(**changes: object) -> Settings:
    fields: dict[str, object] = {
        "bootstrap_servers": "broker:9092",
        "schema_registry_url": "http://registry:8081",
        "signing_secret": "platform-secret",
        "topic_prefix": "acme.",
        "exactly_once": "checkpoints",
        "ingress_partitions": 6,
        "batch_size": 500,
        "max_event_bytes": 4096,
        "dedup_window_seconds": 120,
        "dedup_capacity": 2000,
        "engine": "python",
        "worker_id": "worker-3",
        "replication_factor": 3,
        "audit_retention_days": 30,
        "state_dir": Path("/var/lib/ecoshare"),
        "metrics_port": 9400,
        "bind_host": "0.0.0.0",
    }
    fields.update(changes)
    return Settings(**fields)  # type: ignore[arg-type]


def test_every_worker_setting_reaches_the_worker_config() -> None:
    config = worker_config(_settings(), CATALOG)
    assert config.bootstrap_servers == "broker:9092"
    assert config.schema_registry_url == "http://registry:8081"
    assert config.names == TopicNames("acme.")
    assert config.event_types == ("StoreStatusChanged", "LocationAvailability")
    assert config.master_secret == b"platform-secret"
    assert config.ingress_partitions == 6
    assert config.group_id == "acme.ecoshare-governance"
    assert config.batch_size == 500
    assert config.max_event_bytes == 4096
    assert config.dedup_window_ms == 120_000
    assert config.dedup_capacity == 2000
    assert config.engine == "python"
    assert config.worker_id == "worker-3"
    assert config.transactions is False
    assert config.topic_policy == TopicPolicy(replication_factor=3, audit_retention_days=30)


def test_transactions_when_asked_for() -> None:
    assert worker_config(_settings(exactly_once="transactions"), CATALOG).transactions


def test_the_runtime_keeps_files_under_the_state_dir_and_serves_metrics_as_set() -> None:
    runtime = worker_runtime(_settings())
    assert runtime.data_dir == Path("/var/lib/ecoshare/worker")
    assert (runtime.metrics_host, runtime.metrics_port) == ("0.0.0.0", 9400)


def test_a_service_without_a_broker_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match=r"^a worker needs ECOSHARE_BOOTSTRAP_SERVERS"):
        worker_config(_settings(bootstrap_servers=None), CATALOG)
    with pytest.raises(ConfigurationError, match=r"^the API needs"):
        platform_connection(_settings(schema_registry_url=None), "the API")


def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOSHARE_BATCH_SIZE", "many")
    with pytest.raises(ConfigurationError, match="batch_size"):
        load_settings()


def test_the_broker_assigns_partitions_whatever_the_exactly_once_mode() -> None:
    with_transactions = worker_config(_settings(exactly_once="transactions"), CATALOG)
    assert with_transactions.broker_assigns is True
    # Checkpoints: the worker asks the broker when it connects (Apache Kafka assigns).
    checkpoints = worker_config(_settings(), CATALOG)
    assert checkpoints.broker_assigns is None
    _, consumer = client_configs(replace(checkpoints, broker_assigns=True), "w")
    assert consumer["group.protocol"] == "consumer"
    _, classic = client_configs(replace(checkpoints, broker_assigns=False), "w")
    assert classic["partition.assignment.strategy"] == "cooperative-sticky"
