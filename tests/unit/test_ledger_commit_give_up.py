"""A transaction whose commit keeps failing with retriable errors is aborted and its
batch re-read, never waited on without end."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from ecoshare.config.topics import TopicNames
from ecoshare.governance import ledger as ledger_module
from ecoshare.governance.batch import BatchCounts, BatchResult
from ecoshare.governance.ledger import LedgerSettings, Submitted, TransactionalLedger


class UnreachableCoordinatorProducer:
    def __init__(self) -> None:
        self.commits = 0
        self.aborted = False

    def begin_transaction(self) -> None: ...

    def produce(self, *args: Any, **kwargs: Any) -> None: ...

    def poll(self, timeout: float = 0) -> int:
        return 0

    def send_offsets_to_transaction(self, *args: Any) -> None: ...

    def commit_transaction(self, timeout: float) -> None:
        self.commits += 1
        raise KafkaException(
            KafkaError(KafkaError._TIMED_OUT, "coordinator unreachable", retriable=True)
        )

    def abort_transaction(self, timeout: float) -> None:
        self.aborted = True


class GroupMember:
    def consumer_group_metadata(self) -> object:
        return object()


def test_a_commit_that_never_succeeds_is_aborted_and_the_batch_reread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ledger_module, "COMMIT_GIVE_UP_SECONDS", 0.0)
    producer = UnreachableCoordinatorProducer()
    ledger = TransactionalLedger(
        LedgerSettings(TopicNames("unit."), 60_000, 1000), producer, GroupMember(), reader=None
    )
    result = BatchResult([], {}, BatchCounts(), [])
    outcome = ledger.submit(Submitted(result, 0, 0, 0.0))
    assert producer.commits >= 1
    assert producer.aborted
    assert outcome.rewind
    assert outcome.acknowledged == ()
