"""A worker killed at every step between consume and commit, replaced by a new one on
the same log: every event still reaches each subscriber exactly once, with exactly one
audit decision per (event, subscriber), on both acknowledgement mechanisms.

The broker is the in-memory fake of ``tests/unit/fake_kafka_for_worker.py``; the engine, the
ledger and the worker loop are the real ones. The real brokers are exercised by
``tests/integration/test_crash_recovery.py`` and ``test_faults.py``.
"""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecoshare.catalog.event_catalog import Catalog
from ecoshare.codec.audit_blocks import DecisionRecord, QuarantineRecord, decode_audit_block
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.engine import QuarantineReason
from ecoshare.governance.progress import SnapshotPolicy
from ecoshare.governance.worker import GovernanceWorker, WorkerConfig, WorkerPorts
from tests.strategies import PLATFORM_SECRET
from tests.unit.fake_kafka_for_worker import Crash, FakeConsumer, FakeLog, FakeProducer, FakeReader
from tests.unit.governed import (
    INGRESS_PARTITIONS,
    NAMES,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_codec_layout import _valid_store_status

TYPE = "StoreStatusChanged"
SUBSCRIBERS = ("carrier", "city")
# Each mechanism: (transactions, audit_checkpoint_interval_ms), and its steps between
# consume and commit, in order. "checkpoints" writes each batch's audit blocks and
# checkpoint after it; "combined" holds every batch's until the worker drains.
MECHANISMS = {
    "checkpoints": (False, 0),
    "combined": (False, 3_600_000),
    "transactions": (True, 0),
}
PIPELINED_STEPS = (
    "consumed",
    "governed",
    "produced",
    "acknowledged",
    "audited",
    "checkpointed",
    "committed",
)
STEPS = {
    "checkpoints": PIPELINED_STEPS,
    "combined": PIPELINED_STEPS,
    "transactions": (
        "consumed",
        "governed",
        "produced",
        "checkpointed",
        "offsets-sent",
        "committed",
    ),
}
# Held until the drain, the combined mechanism writes audit and checkpoint once.
ONCE_WHEN_COMBINED = {"audited", "checkpointed", "committed"}
EVENTS = 90
BATCH = 7


def _state() -> GovernanceState:
    now = datetime.now(UTC)
    partners = [
        Partner(partner_id="postnl", name="PostNL", roles=frozenset({Role.PUBLISHER})),
        *(
            Partner(partner_id=sub, name=sub, roles=frozenset({Role.SUBSCRIBER}))
            for sub in SUBSCRIBERS
        ),
    ]
    agreements = [
        Agreement(
            agreement_id=f"agr-{sub}",
            version=1,
            publishers=frozenset({"postnl"}),
            subscriber=sub,
            event_types=frozenset({TYPE}),
            purpose="parcel-delivery",
            valid_from=now - timedelta(days=1),
            fields={"event_id": "deliver", "location_id": "deliver", "status": "deliver"},
        )
        for sub in SUBSCRIBERS
    ]
    return GovernanceState(partners, agreements, [])


def _event_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def _publish(log: FakeLog, numbers: range) -> None:
    for number in numbers:
        value = encode_event(
            TYPE, _valid_store_status(event_id=_event_id(number), location_id=f"loc-{number % 13}")
        )
        message = signed_message(TYPE, value, "postnl")
        log.append(message.topic(), message.partition(), message.key(), value, message.headers())


class Platform:
    """The fake log plus what every worker on it shares (state, delivery schemas)."""

    def __init__(
        self,
        *,
        transactions: bool,
        snapshots: SnapshotPolicy,
        batch_size: int = BATCH,
        combine_ms: int = 0,
    ) -> None:
        self.combine_ms = combine_ms
        self.batch_size = batch_size
        self.log = FakeLog(INGRESS_PARTITIONS)
        self.registry = RecordingRegistry()
        self.state = _state()
        self.transactions = transactions
        self.snapshots = snapshots

    def worker(self, step: Any = None) -> tuple[GovernanceWorker, FakeProducer, FakeConsumer]:
        producer = FakeProducer(self.log)
        holder: list[GovernanceWorker] = []
        consumer = FakeConsumer(self.log, on_idle=lambda: holder[0].stop())
        config = WorkerConfig(
            bootstrap_servers="unused",
            schema_registry_url="unused",
            names=NAMES,
            event_types=(TYPE,),
            master_secret=PLATFORM_SECRET,
            ingress_partitions=INGRESS_PARTITIONS,
            batch_size=self.batch_size,
            dedup_window_ms=3_600_000,
            dedup_capacity=10_000,
            transactions=self.transactions,
            audit_checkpoint_interval_ms=self.combine_ms,
        )
        worker = GovernanceWorker(
            config,
            Catalog.__new__(Catalog),  # unused: the engine is given
            lambda: self.state,
            ports=WorkerPorts(consumer, producer, FakeReader(self.log), self.registry.register),
            engine=make_engine(self.registry, dedup_window_ms=3_600_000),
            snapshots=self.snapshots,
            step=step,
        )
        holder.append(worker)
        return worker, producer, consumer

    def run_to_end(self) -> GovernanceWorker:
        worker, _, _ = self.worker()
        worker.run()
        return worker

    def delivered(self, subscriber: str) -> list[str]:
        return [
            self.registry.decode(message.value() or b"")["event_id"]
            for message in self.log.visible(NAMES.delivery(subscriber, TYPE))
        ]

    def decisions(self) -> list[DecisionRecord | QuarantineRecord]:
        return [
            record
            for message in self.log.visible(NAMES.audit)
            for record in decode_audit_block(message.value())
        ]


def _crash_at(step: str, occurrence: int, die: Any) -> Any:
    seen: collections.Counter[str] = collections.Counter()

    def hook(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == occurrence:
            die()
            raise Crash(f"killed after {step} #{occurrence}")

    return hook


def _run_with_crash(platform: Platform, step: str, landed: float, occurrence: int = 3) -> None:
    clients: list[Any] = []

    def die() -> None:
        _, producer, consumer = clients
        producer.die(landed)
        consumer.dead = True

    crashing = platform.worker(_crash_at(step, occurrence, die))
    clients.extend(crashing)
    with pytest.raises(Crash):
        crashing[0].run()
    platform.run_to_end()


def _assert_exactly_once(platform: Platform, expected: set[str]) -> None:
    for subscriber in SUBSCRIBERS:
        delivered = platform.delivered(subscriber)
        assert sorted(delivered) == sorted(expected), subscriber
    per_pair = collections.Counter(
        (record.event_id, record.subscriber_id)
        for record in platform.decisions()
        if isinstance(record, DecisionRecord)
    )
    assert per_pair == {(event, sub): 1 for event in expected for sub in SUBSCRIBERS}


@pytest.mark.parametrize("landed", [0.0, 0.5, 1.0], ids=["none-landed", "half", "all"])
@pytest.mark.parametrize(
    ("mechanism", "step"),
    [(mechanism, step) for mechanism, steps in STEPS.items() for step in steps],
    ids=[f"{mechanism}-{step}" for mechanism, steps in STEPS.items() for step in steps],
)
def test_a_worker_killed_at_any_step_is_replaced_without_loss_or_repeat(
    step: str, landed: float, mechanism: str
) -> None:
    transactions, combine_ms = MECHANISMS[mechanism]
    platform = Platform(
        transactions=transactions, snapshots=SnapshotPolicy(every_batches=4), combine_ms=combine_ms
    )
    _publish(platform.log, range(EVENTS))
    once = mechanism == "combined" and step in ONCE_WHEN_COMBINED
    _run_with_crash(platform, step, landed, occurrence=1 if once else 3)
    _assert_exactly_once(platform, {_event_id(n) for n in range(EVENTS)})


@pytest.mark.parametrize("transactions", [False, True], ids=["checkpoints", "transactions"])
def test_a_duplicate_after_a_takeover_is_refused_from_the_recovered_window(
    transactions: bool,
) -> None:
    platform = Platform(transactions=transactions, snapshots=SnapshotPolicy(every_batches=3))
    _publish(platform.log, range(EVENTS))
    platform.run_to_end()
    _publish(platform.log, range(5))  # publisher retries, read by the next owner
    platform.run_to_end()
    _assert_exactly_once(platform, {_event_id(n) for n in range(EVENTS)})
    refused = [
        record.event_id
        for record in platform.decisions()
        if isinstance(record, QuarantineRecord)
        and record.reason == QuarantineReason.DUPLICATE_EVENT_ID
    ]
    assert sorted(refused) == sorted(_event_id(n) for n in range(5))


@pytest.mark.parametrize("transactions", [False, True], ids=["checkpoints", "transactions"])
def test_a_takeover_after_many_batches_reads_a_bounded_number_of_progress_records(
    transactions: bool,
) -> None:
    """Snapshots bound the progress records a takeover reads, however long the history;
    without them (a log of the format before snapshots) it reads them all."""
    policy = SnapshotPolicy(every_batches=8)
    platform = Platform(transactions=transactions, snapshots=policy, batch_size=1)
    rounds = 40
    for round_ in range(rounds):  # many owners, many batches
        _publish(platform.log, range(round_ * 30, round_ * 30 + 30))
        platform.run_to_end()
    written = sum(
        len(log) for (topic, _), log in platform.log.partitions.items() if topic == NAMES.progress
    )
    taker = platform.run_to_end()
    # Per progress partition: one span of (every_batches + 2) records, and the records
    # the fake's end estimate falls short by; whatever the history's length.
    bound = INGRESS_PARTITIONS * (policy.every_batches + 2 + platform.log.end_shortfall)
    read = taker.ledger.progress_records_read
    assert written > 10 * bound, (written, bound)
    assert 0 < read <= bound, f"read {read} of {written} progress records (bound {bound})"
    _assert_exactly_once(platform, {_event_id(n) for n in range(rounds * 30)})


@pytest.mark.parametrize("transactions", [False, True], ids=["checkpoints", "transactions"])
def test_compaction_keeps_what_a_takeover_needs(transactions: bool) -> None:
    """After the progress topic is compacted, the next owner still resumes where the
    last one stopped and still refuses duplicates of events from before compaction."""
    platform = Platform(
        transactions=transactions, snapshots=SnapshotPolicy(every_batches=5), batch_size=1
    )
    for round_ in range(6):
        _publish(platform.log, range(round_ * 40, round_ * 40 + 40))
        platform.run_to_end()
    assert platform.log.compact(NAMES.progress) > 100
    _publish(platform.log, range(0, 240, 7))  # retries of events from the whole history
    _publish(platform.log, range(240, 280))
    platform.run_to_end()
    _assert_exactly_once(platform, {_event_id(n) for n in range(280)})
    refused = [
        record.event_id
        for record in platform.decisions()
        if isinstance(record, QuarantineRecord)
        and record.reason == QuarantineReason.DUPLICATE_EVENT_ID
    ]
    assert sorted(refused) == sorted(_event_id(n) for n in range(0, 240, 7))


def test_combined_audit_and_checkpoints_write_one_progress_record_per_partition_per_write() -> None:
    """Held until the drain, a run's audit blocks go out in one write and each ingress
    partition gets one checkpoint for all its batches; written after every batch, each
    batch adds its own. Either way every event is delivered and audited exactly once."""
    progress_written = {}
    for combine_ms in (0, 3_600_000):
        platform = Platform(
            transactions=False,
            snapshots=SnapshotPolicy(every_batches=1000),
            batch_size=3,
            combine_ms=combine_ms,
        )
        _publish(platform.log, range(EVENTS))
        worker = platform.run_to_end()
        _assert_exactly_once(platform, {_event_id(n) for n in range(EVENTS)})
        progress_written[combine_ms] = sum(
            len(log)
            for (topic, _), log in platform.log.partitions.items()
            if topic == NAMES.progress
        )
        if combine_ms:
            assert worker.ledger.combined_writes == 1  # type: ignore[attr-defined]
    # Each partition: its first checkpoint (a snapshot, at the markers), then one
    # checkpoint per write.
    assert progress_written[3_600_000] == 2 * INGRESS_PARTITIONS
    assert progress_written[0] > 2 * progress_written[3_600_000]
