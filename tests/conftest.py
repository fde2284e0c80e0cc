"""Shared fixtures: one real embedded broker and one real registry per test session.

Each test that touches Kafka takes a fresh uuid-named topic prefix, so tests never see
each other's data even though they share the broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecoshare.adapters.embedded_broker import EmbeddedBroker
from ecoshare.topics import TopicNames

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ecoshare")


@pytest.fixture(scope="session")
def broker(session_dir: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=session_dir / "broker.log") as running:
        yield running


@pytest.fixture(scope="session")
def bootstrap_servers(broker: EmbeddedBroker) -> str:
    return broker.bootstrap_servers


@pytest.fixture(scope="session")
def registry_url(bootstrap_servers: str, session_dir: Path) -> Iterator[str]:
    from ecoshare.registry.process import RegistryProcess

    with RegistryProcess(
        bootstrap_servers=bootstrap_servers,
        topic=f"_schemas-{uuid.uuid4().hex[:8]}",
        log_path=session_dir / "registry.log",
    ) as registry:
        yield registry.url


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def topic_names(topic_prefix: str) -> TopicNames:
    return TopicNames(topic_prefix)
