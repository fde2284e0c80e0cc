"""Which broker `ecoshare up` starts: a forced kind as asked, `auto` by what is installed."""

from __future__ import annotations

import pytest

from ecoshare.adapters.brokers import broker_choice, decide_broker
from ecoshare.config.settings import Settings
from ecoshare.errors import ConfigurationError


def test_auto_is_the_default() -> None:
    assert Settings().broker == "auto"


def test_auto_takes_apache_kafka_where_java_and_its_jars_are_found() -> None:
    decision = decide_broker("auto", java="/usr/bin/java", jars_problem=None)
    assert decision.kind == "kafka"
    assert "/usr/bin/java" in decision.reason
    assert str(decision).startswith("broker kafka: ")


def test_auto_takes_tansu_without_java_and_says_so() -> None:
    decision = decide_broker("auto", java=None, jars_problem=None)
    assert decision.kind == "tansu"
    assert "no Java runtime" in decision.reason
    assert "\n" not in str(decision)


def test_auto_takes_tansu_when_the_kafka_jars_cannot_be_had() -> None:
    problem = "the Kafka 4.4.0 jars are not in /x and Maven (`mvn`) is not on PATH"
    decision = decide_broker("auto", java="/usr/bin/java", jars_problem=problem)
    assert decision.kind == "tansu"
    assert problem in decision.reason


@pytest.mark.parametrize("kind", ["tansu", "kafka"])
def test_a_forced_broker_is_kept_whatever_is_installed(kind: str) -> None:
    for java in (None, "/usr/bin/java"):
        decision = decide_broker(kind, java=java, jars_problem="no jars")  # type: ignore[arg-type]
        assert decision.kind == kind
        assert "asked for" in decision.reason


def test_an_unknown_choice_is_a_named_error() -> None:
    assert broker_choice("auto") == "auto"
    with pytest.raises(ConfigurationError, match="choose one of auto, tansu, kafka"):
        broker_choice("redpanda")
