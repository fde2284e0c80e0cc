"""The topic follower's machinery, against an in-memory consumer: the caught-up rule,
catch_up, fold and listener fan-out, and the rule for invalid control records."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from ecoshare.adapters.kafka.control_records import (
    CompactedState,
    ControlRecordError,
    ValidRecords,
    encode_value,
)
from ecoshare.adapters.kafka.errors import TopicMissingError
from ecoshare.adapters.kafka.follower import TopicFollower
from tests.unit.fake_kafka_for_adapters import FakeCluster, FakeMessage

WITHIN = 5.0


class Shop(BaseModel):
    shop_id: str
    stores: int


def _follower(cluster: FakeCluster, topics: list[str], **options: Any) -> TopicFollower:
    return TopicFollower(
        "fake:9092",
        topics,
        name="test",
        poll_seconds=0.01,
        consumer_factory=cluster.consumer,
        **{"read_committed": True, **options},
    )


class Recorder:
    """A fold that keeps every value it was given, in order."""

    def __init__(self) -> None:
        self.values: list[bytes | None] = []
        self.lock = threading.Lock()

    def apply(self, message: Any) -> None:
        with self.lock:
            self.values.append(message.value())


@pytest.fixture
def cluster() -> FakeCluster:
    found = FakeCluster()
    found.create("t", partitions=2)
    return found


@pytest.fixture
def running(cluster: FakeCluster) -> Iterator[tuple[TopicFollower, Recorder]]:
    follower = _follower(cluster, ["t"])
    recorder = Recorder()
    follower.add_fold(recorder)
    with follower:
        yield follower, recorder


def test_caught_up_needs_every_partition_to_report_its_end(cluster: FakeCluster) -> None:
    cluster.stalled.add(("t", 1))
    follower = _follower(cluster, ["t"]).start()
    assert not follower.wait_until_caught_up(0.3)
    assert follower.caught_up is False
    assert follower.partitions_to_catch_up() == 1

    cluster.stalled.clear()
    assert follower.wait_until_caught_up(WITHIN)
    assert follower.partitions_to_catch_up() == 0
    follower.stop()


def test_catch_up_needs_an_end_reported_after_the_call(
    cluster: FakeCluster, running: tuple[TopicFollower, Recorder]
) -> None:
    follower, recorder = running
    assert follower.wait_until_caught_up(WITHIN)
    # Both partitions reported their end before; with no fetch answered after the
    # call, an earlier end proves nothing about writes made since.
    cluster.stalled.add(("t", 0))
    cluster.append("t", 0, b"k", b"written before the call")
    assert follower.catch_up(0.3) is False
    assert recorder.values == []

    cluster.stalled.clear()
    assert follower.catch_up(WITHIN) is True
    assert recorder.values == [b"written before the call"]


def test_catch_up_applies_every_record_acknowledged_before_the_call(
    cluster: FakeCluster, running: tuple[TopicFollower, Recorder]
) -> None:
    follower, recorder = running
    for number in range(5):
        cluster.append("t", number % 2, b"k", f"v{number}".encode())
    assert follower.catch_up(WITHIN)
    assert sorted(recorder.values) == [f"v{number}".encode() for number in range(5)]
    assert follower.messages == 5


def test_catch_up_seeks_each_partition_to_the_followers_own_position(
    cluster: FakeCluster, running: tuple[TopicFollower, Recorder]
) -> None:
    follower, recorder = running
    cluster.append("t", 0, b"k", b"a")
    cluster.append("t", 0, b"k", b"b")
    assert follower.catch_up(WITHIN)
    consumer = cluster.consumers[0]
    assert consumer.positions[("t", 0)] == 2
    assert set(consumer.seeks) >= {("t", 0), ("t", 1)}
    # Seeking re-reads nothing: each record reached the fold once.
    assert recorder.values == [b"a", b"b"]


def test_wait_for_returns_once_the_written_offset_is_applied(
    cluster: FakeCluster, running: tuple[TopicFollower, Recorder]
) -> None:
    follower, recorder = running
    assert follower.wait_for(("t", 1), 0, 0.2) is False
    offset = cluster.append("t", 1, b"k", b"mine")
    assert follower.wait_for(("t", 1), offset, WITHIN)
    assert b"mine" in recorder.values


def test_folds_run_before_listeners_and_a_failing_reaction_stops_nothing(
    cluster: FakeCluster,
) -> None:
    follower = _follower(cluster, ["t"])
    seen: list[str] = []
    follower.add_fold(lambda_fold(lambda message: seen.append(f"fold:{message.value()!r}")))

    def failing(message: Any) -> None:
        raise RuntimeError("a listener's bug")

    follower.add_listener(failing)
    follower.add_listener(lambda message: seen.append(f"listener:{message.value()!r}"))
    cluster.append("t", 0, b"k", b"one")
    cluster.append("t", 0, b"k", b"two")
    with follower:
        assert follower.catch_up(WITHIN)
        assert seen == ["fold:b'one'", "listener:b'one'", "fold:b'two'", "listener:b'two'"]
        assert follower.reaction_failures == 2
        assert follower.failure is None
        with pytest.raises(RuntimeError, match="already running"):
            follower.add_listener(print)


class lambda_fold:  # noqa: N801 - reads as a function at the call site
    def __init__(self, apply: Any) -> None:
        self.apply = apply


def test_a_missing_topic_is_a_named_error_unless_the_follower_waits(
    cluster: FakeCluster,
) -> None:
    with pytest.raises(TopicMissingError, match="'later'"):
        _follower(cluster, ["later"]).start()

    waiting = _follower(cluster, ["later"], wait_for_topics=True)
    recorder = Recorder()
    waiting.add_fold(recorder)
    with waiting:
        assert waiting.partitions_to_catch_up() is None
        cluster.create("later")
        cluster.append("later", 0, None, b"first")
        assert waiting.wait_until_caught_up(WITHIN)
        assert recorder.values == [b"first"]


def test_a_fatal_consumer_error_stops_the_follower_and_wakes_its_waiters(
    cluster: FakeCluster, running: tuple[TopicFollower, Recorder]
) -> None:
    follower, _ = running
    assert follower.wait_until_caught_up(WITHIN)
    cluster.fatal_error = True
    assert follower.catch_up(WITHIN) is False
    assert follower.failure is not None and "fatal" in follower.failure.lower()


# -- the rule for invalid control records ------------------------------------------------


def _record(key: str, value: Any, offset: int = 0) -> FakeMessage:
    raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return FakeMessage("shops", 0, offset, key.encode(), raw)


def test_an_invalid_record_keeps_the_last_valid_one_and_is_counted() -> None:
    records = ValidRecords(Shop, topic="shops")
    assert records.apply_message(_record("s1", {"shop_id": "s1", "stores": 2}))
    assert not records.apply_message(_record("s1", {"shop_id": "s1", "stores": "many"}))
    assert not records.apply_message(_record("s1", b"{not json"))
    assert not records.apply_message(_record("s1", [1, 2]))

    assert records.valid["s1"] == Shop(shop_id="s1", stores=2)
    assert records.invalid == 3
    assert "JSON object" in records.rejected["s1"]

    assert records.apply_message(_record("s1", {"shop_id": "s1", "stores": 3}))
    assert records.valid["s1"].stores == 3
    assert records.rejected == {}


def test_an_invalid_first_record_leaves_no_model_and_says_why() -> None:
    records = ValidRecords(Shop, topic="shops")
    assert not records.apply_message(_record("s2", {"shop_id": "s2"}))
    assert "s2" not in records.valid
    assert records.rejected["s2"].startswith("stores:")


def test_deletion_marker_and_tombstone_both_delete_and_clear_the_rejection() -> None:
    records = ValidRecords(Shop, topic="shops")
    records.apply_message(_record("s1", {"shop_id": "s1", "stores": 1}))
    records.apply_message(_record("s2", {"shop_id": "s2", "stores": 1}))
    records.apply_message(_record("s2", {"shop_id": "s2"}))
    assert records.apply_message(_record("s1", {"deleted": True}))
    assert records.apply_message(_record("s2", None))
    assert records.valid == {}
    assert records.rejected == {}
    assert records.invalid == 1


def test_a_record_without_a_key_is_counted_not_applied() -> None:
    records = ValidRecords(Shop, topic="shops")
    message = FakeMessage("shops", 0, 7, None, b'{"shop_id":"x","stores":1}')
    assert not records.apply_message(message)
    assert (records.valid, records.invalid) == ({}, 1)


def test_compacted_state_follows_several_topics_by_the_same_rule() -> None:
    cluster = FakeCluster()
    cluster.create("shops")
    cluster.create("notes")
    state = CompactedState({"shops": Shop, "notes": None})
    follower = _follower(cluster, ["shops", "notes"], read_committed=False)
    follower.add_fold(state)
    cluster.append("shops", 0, b"s1", encode_value({"shop_id": "s1", "stores": 4}))
    cluster.append("shops", 0, b"s1", encode_value({"shop_id": "s1", "stores": -0.5}))
    cluster.append("notes", 0, b"n1", encode_value({"anything": ["goes"]}))
    with follower:
        assert follower.catch_up(WITHIN)
        assert state.models("shops") == {"s1": Shop(shop_id="s1", stores=4)}
        assert state.get("shops", "s1") == {"shop_id": "s1", "stores": 4}
        assert state.records("notes") == {"n1": {"anything": ["goes"]}}
        assert state.invalid() == 1


def test_compacted_state_model_is_the_last_valid_record_of_one_key() -> None:
    state = CompactedState({"shops": Shop})
    state.apply(_record("s1", {"shop_id": "s1", "stores": 4}, offset=0))
    state.apply(_record("s1", {"shop_id": "s1", "stores": "many"}, offset=1))
    state.apply(_record("s2", {"shop_id": "s2"}, offset=2))
    assert state.model("shops", "s1") == Shop(shop_id="s1", stores=4)
    assert state.model("shops", "s2") is None  # never valid: absent, not half-read
    assert state.model("shops", "s3") is None
    state.apply(_record("s1", {"deleted": True}, offset=3))
    assert state.model("shops", "s1") is None
    assert state.invalid() == 2


def test_a_value_reading_as_the_deletion_marker_is_refused_on_write() -> None:
    from ecoshare.adapters.kafka.control_records import put_record

    with pytest.raises(ControlRecordError, match="would delete"):
        put_record(None, "shops", "s1", {"deleted": True})  # type: ignore[arg-type]


def test_the_governance_state_keeps_the_last_valid_partner_by_the_same_rule() -> None:
    from types import SimpleNamespace

    from ecoshare.governance.live_state import LiveGovernanceState

    def snapshot(version: int, partners: dict[str, Any]) -> Any:
        return SimpleNamespace(version=version, partners=partners, agreements={}, consents={})

    good = {"partner_id": "shop-a", "name": "Shop A", "roles": ["publisher"]}
    live = LiveGovernanceState()
    assert "shop-a" in live.follow(snapshot(1, {"shop-a": good})).partners

    state = live.follow(snapshot(2, {"shop-a": {**good, "roles": ["astronaut"]}}))
    assert state.partners["shop-a"].name == "Shop A"
    assert ("partner", "shop-a") in live.invalid_records

    state = live.follow(snapshot(3, {}))
    assert "shop-a" not in state.partners
    assert live.invalid_records == {}


def test_concurrent_catch_ups_share_rounds_and_all_complete(
    cluster: FakeCluster, running: tuple[TopicFollower, Recorder]
) -> None:
    follower, recorder = running
    results: list[bool] = []
    lock = threading.Lock()

    def caller(number: int) -> None:
        for round_number in range(5):
            cluster.append("t", number % 2, b"k", f"{number}-{round_number}".encode())
            done = follower.catch_up(WITHIN)
            with lock:
                results.append(done)

    callers = [threading.Thread(target=caller, args=(number,)) for number in range(8)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(30)
    assert results == [True] * 40
    assert len(recorder.values) == 40
