"""Shared fixtures: one real broker and one real registry per test session and broker.

Every test that touches Kafka runs once per broker given with ``--broker`` (default
``tansu,kafka``: the embedded broker and Apache Kafka). Tests are grouped by broker, so
one of each runs at a time. Each test takes a fresh uuid-named topic prefix, so tests
never see each other's data even though they share the broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecoshare.adapters.brokers import BROKER_KINDS, BrokerKind, LocalBroker, local_broker
from ecoshare.config.topics import TopicNames

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker",
        default=",".join(BROKER_KINDS),
        help="comma-separated brokers the integration and e2e tests run on "
        f"(of {', '.join(BROKER_KINDS)}; default all)",
    )


def selected_brokers(config: pytest.Config) -> list[str]:
    kinds = [kind.strip() for kind in str(config.getoption("broker")).split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(BROKER_KINDS))
    if unknown or not kinds:
        raise pytest.UsageError(f"--broker: unknown {unknown}; choose from {BROKER_KINDS}")
    return kinds


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_kind" in metafunc.fixturenames:
        metafunc.parametrize("broker_kind", selected_brokers(metafunc.config), scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out (not skip) a test's runs on brokers its ``brokers`` marker excludes."""
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        only = item.get_closest_marker("brokers")
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("broker_kind") if callspec is not None else None
        if only is not None and kind is not None and kind not in only.args:
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "brokers(*kinds): run only on these brokers (a fault that needs them)"
    )


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ecoshare")


@pytest.fixture(scope="session")
def broker(broker_kind: BrokerKind, session_dir: Path) -> Iterator[LocalBroker]:
    logs = session_dir / broker_kind
    data_dir = logs / "data" if broker_kind == "kafka" else None
    running = local_broker(broker_kind, logs_dir=logs, data_dir=data_dir).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def bootstrap_servers(broker: LocalBroker) -> str:
    return broker.bootstrap_servers


@pytest.fixture(scope="session")
def registry_url(bootstrap_servers: str, broker_kind: str, session_dir: Path) -> Iterator[str]:
    from ecoshare.registry.process import RegistryProcess

    with RegistryProcess(
        bootstrap_servers=bootstrap_servers,
        topic=f"_schemas-{uuid.uuid4().hex[:8]}",
        log_path=session_dir / broker_kind / "registry.log",
    ) as registry:
        yield registry.url


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def topic_names(topic_prefix: str) -> TopicNames:
    return TopicNames(topic_prefix)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.integration.faults import pause_lines

    lines = pause_lines()
    if lines:
        terminalreporter.section("partition pauses under faults")
        for line in lines:
            terminalreporter.write_line(line)
