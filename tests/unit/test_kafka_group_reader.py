"""The group reader against an in-memory consumer: what it hands out, commits and raises."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from ecoshare.adapters.kafka.errors import KafkaIoError
from ecoshare.adapters.kafka.group_reader import GroupReader
from tests.unit.fake_kafka_for_adapters import FakeError, FakeMessage


@dataclass
class ScriptedConsumer:
    """Answers each poll with the next scripted item (an exception is raised)."""

    config: dict[str, Any]
    script: list[Any] = field(default_factory=list)
    subscribed: list[str] = field(default_factory=list)
    commits: list[tuple[Any, bool]] = field(default_factory=list)
    fail_commit: bool = False
    closed: bool = False

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def poll(self, timeout: float) -> Any:
        item = self.script.pop(0) if self.script else None
        if isinstance(item, Exception):
            raise item
        return item

    def commit(self, message: Any, asynchronous: bool) -> None:
        if self.fail_commit:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        self.commits.append((message, asynchronous))

    def close(self) -> None:
        self.closed = True


def _reader(*script: Any, fail_commit: bool = False) -> tuple[GroupReader, ScriptedConsumer]:
    made: list[ScriptedConsumer] = []

    def factory(config: dict[str, Any]) -> ScriptedConsumer:
        made.append(ScriptedConsumer(config, list(script), fail_commit=fail_commit))
        return made[-1]

    reader = GroupReader(
        "fake:9092", "ecoshare-webhook-wh_1", "deliver.a.T", consumer_factory=factory
    )
    return reader, made[0]


def test_it_joins_its_group_reads_committed_and_commits_by_hand() -> None:
    _, consumer = _reader()
    assert consumer.subscribed == ["deliver.a.T"]
    assert consumer.config["group.id"] == "ecoshare-webhook-wh_1"
    # A batch a fenced worker aborted must never reach a webhook.
    assert consumer.config["isolation.level"] == "read_committed"
    assert consumer.config["enable.auto.commit"] is False


def test_only_records_are_handed_out_and_expected_errors_are_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = FakeMessage("deliver.a.T", 0, 7, b"k", b"v")
    reader, _ = _reader(
        FakeMessage("deliver.a.T", 0, None, failure=FakeError(KafkaError.UNKNOWN_TOPIC_OR_PART)),
        FakeMessage("deliver.a.T", 0, 7, failure=FakeError(KafkaError._PARTITION_EOF)),
        FakeMessage("deliver.a.T", 0, None, failure=FakeError(KafkaError._MSG_TIMED_OUT)),
        record,
    )
    found: list[Any] = [reader.poll(0.1) for _ in range(5)]
    assert found == [None, None, None, record, None]
    # The unexpected one is logged, the expected ones are not.
    assert [r.getMessage() for r in caplog.records if "deliver.a.T" in r.getMessage()] == [
        f"reading deliver.a.T in ecoshare-webhook-wh_1: {FakeError(KafkaError._MSG_TIMED_OUT)}"
    ]


def test_a_commit_is_synchronous_and_a_failed_one_is_a_named_error() -> None:
    record = FakeMessage("deliver.a.T", 0, 7)
    reader, consumer = _reader()
    reader.commit(record)  # type: ignore[arg-type]
    assert consumer.commits == [(record, False)]
    failing, _ = _reader(fail_commit=True)
    with pytest.raises(KafkaIoError, match=re.escape("committing deliver.a.T")):
        failing.commit(record)  # type: ignore[arg-type]


def test_a_client_failure_while_polling_is_a_named_error_and_close_is_quiet() -> None:
    reader, consumer = _reader(KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN)))
    where = re.escape("reading deliver.a.T in ecoshare-webhook-wh_1")
    with pytest.raises(KafkaIoError, match=where):
        reader.poll(0.1)
    reader.close()
    assert consumer.closed
