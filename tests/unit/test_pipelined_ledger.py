"""The pipelined ledger's combined audit and checkpoint writes at their edges: a failed
output, a lost partition, a bound on what is held. The real loop, engine and ledger on
the in-memory broker of ``tests/unit/fake_kafka_for_worker.py``, as in
``test_worker_crash_steps.py``."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import TopicPartition

from ecoshare.governance import pipelined_ledger
from ecoshare.governance.ledger import OutputsNotAcknowledgedError
from ecoshare.governance.progress import SnapshotPolicy
from tests.unit.governed import NAMES
from tests.unit.test_worker_crash_steps import (
    EVENTS,
    Platform,
    _assert_exactly_once,
    _event_id,
    _publish,
)

HELD_UNTIL_THE_END_MS = 3_600_000


class _Once(set[str]):
    """Topics whose next record only is refused."""

    def __contains__(self, topic: object) -> bool:
        if super().__contains__(topic):
            self.discard(topic)  # type: ignore[arg-type]
            return True
        return False


def _platform() -> Platform:
    platform = Platform(
        transactions=False,
        snapshots=SnapshotPolicy(every_batches=1000),
        combine_ms=HELD_UNTIL_THE_END_MS,
    )
    _publish(platform.log, range(EVENTS))
    return platform


def test_a_failed_audit_block_is_never_checkpointed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """An audit write fails mid-run: the worker stops without a checkpoint past it (not
    even when it closes, after the error was raised), and the next one audits and
    delivers every event once."""
    monkeypatch.setattr(pipelined_ledger, "MAX_HELD_IDS", 20)  # writes during the run
    platform = _platform()
    producers: list[Any] = []

    def refuse_one_block_of_the_first_write(name: str) -> None:
        if name == "audited":  # its blocks are in flight, the partitions' markers landed
            producers[0].refused_topics = _Once({NAMES.audit})

    worker, producer, _ = platform.worker(refuse_one_block_of_the_first_write)
    producers.append(producer)
    with pytest.raises(OutputsNotAcknowledgedError):
        worker.run()
    assert worker.events > 0  # batches were acknowledged before the audit failed
    assert all(offset == 0 for offset in platform.log.committed.values())
    platform.run_to_end()
    _assert_exactly_once(platform, {_event_id(n) for n in range(EVENTS)})


def test_a_lost_partition_s_held_audit_and_checkpoint_are_dropped_not_written() -> None:
    """Lost (not handed over), its next owner may be writing its audit already: what
    the worker holds of it is dropped. The next owner finds the deliveries in the output
    tails, audits every event once and delivers none twice."""
    platform = _platform()
    holder: list[Any] = []

    def lose_everything_after_some_batches(name: str, seen: list[int] = [0]) -> None:  # noqa: B006
        if name == "produced":
            seen[0] += 1
            if seen[0] == 5:
                worker, _, consumer = holder[0]
                assigned = [TopicPartition(*source) for source in sorted(worker._assigned)]
                worker._on_lost(consumer, assigned)

    holder.append(platform.worker(lose_everything_after_some_batches))
    worker = holder[0][0]
    worker.run()
    assert worker.events > 0  # batches were acknowledged, then held
    assert platform.decisions() == []
    assert all(offset == 0 for offset in platform.log.committed.values())
    platform.run_to_end()
    _assert_exactly_once(platform, {_event_id(n) for n in range(EVENTS)})


def test_a_write_is_due_once_its_ids_reach_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """However long the interval, a write checkpoints at most about MAX_HELD_IDS ids
    (one checkpoint record stays well under the client's record limit)."""
    monkeypatch.setattr(pipelined_ledger, "MAX_HELD_IDS", 20)
    platform = _platform()
    worker = platform.run_to_end()
    writes = worker.ledger.combined_writes  # type: ignore[attr-defined]
    assert writes >= EVENTS // (20 + 7)  # batches of 7: a write holds 20 to 26 ids
    _assert_exactly_once(platform, {_event_id(n) for n in range(EVENTS)})
