"""The compiled duplicate window, signature check and key partitioner equal their
Python references."""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecoshare.domain.identity import sign_event
from ecoshare.governance.cores import select_core
from ecoshare.governance.dedup import DedupWindow
from ecoshare.governance.partitioning import key_partition, murmur2

native = select_core("native")
assert native is not None

_operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcdefghij"), st.integers(0, 50)),
        st.tuples(st.just("expire"), st.just(""), st.integers(0, 80)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(_operations, st.integers(1, 6), st.integers(0, 30))
def test_the_windows_agree_on_every_sequence_of_operations(
    operations: list[tuple[str, str, int]], capacity: int, window_ms: int
) -> None:
    compiled = _replay_on_both(operations, capacity, window_ms, tuple("abcdefghij"))
    assert (42 in compiled) is False  # only strings are event ids


def _replay_on_both(
    operations: list[tuple[str, str, int]], capacity: int, window_ms: int, ids: tuple[str, ...]
) -> native.DedupWindow:
    """Apply ``operations`` to a reference and a compiled window, asserting after each
    that they agree on size and on which of ``ids`` they hold; the compiled window."""
    reference = DedupWindow(window_ms, capacity)
    compiled = native.DedupWindow(window_ms, capacity)
    clock = 0
    for operation, event_id, step in operations:
        clock += step
        if operation == "add":
            assert compiled.add(event_id, clock) == reference.add(event_id, clock)
        elif operation == "add_all":
            batch = [event_id, ids[len(reference) % len(ids)], event_id]
            compiled.add_all(batch, clock)
            reference.add_all(batch, clock)
        else:
            compiled.expire(clock)
            reference.expire(clock)
        assert len(compiled) == len(reference)
        assert [name in compiled for name in ids] == [name in reference for name in ids]
    return compiled


# The compiled window keeps canonical lowercase UUIDs as numbers and any other id as a
# string: a pool where both kinds look alike (same UUID in upper case, without hyphens,
# one digit off) proves the two stores never confuse ids.
_UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
_MIXED_IDS = (
    _UUID,
    _UUID.upper(),
    _UUID.replace("-", ""),
    "0f8fad5b-d9cb-469f-a165-70867728950f",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "{" + _UUID + "}",
    "0f8fad5b-d9cb-469f-a165-70867728950g",
    "a",
    "order-1",
    "",
)
_mixed_operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(_MIXED_IDS), st.integers(0, 50)),
        st.tuples(st.just("add_all"), st.sampled_from(_MIXED_IDS), st.integers(0, 50)),
        st.tuples(st.just("expire"), st.just(""), st.integers(0, 80)),
    ),
    max_size=80,
)


@settings(max_examples=400)
@given(_mixed_operations, st.integers(1, 8), st.integers(0, 40))
def test_the_windows_agree_on_uuid_and_other_ids_alike(
    operations: list[tuple[str, str, int]], capacity: int, window_ms: int
) -> None:
    compiled = _replay_on_both(operations, capacity, window_ms, _MIXED_IDS)
    assert (compiled.capacity, compiled.window_ms) == (capacity, window_ms)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2000), st.randoms(use_true_random=False))
def test_a_full_window_evicts_the_oldest_id_of_either_kind(
    capacity: int, count: int, rng: random.Random
) -> None:
    ids = [
        str(uuid.UUID(int=rng.getrandbits(128))) if rng.random() < 0.7 else f"id-{index}"
        for index in range(count)
    ]
    reference = DedupWindow(10_000, capacity)
    compiled = native.DedupWindow(10_000, capacity)
    for index, event_id in enumerate(ids):
        assert compiled.add(event_id, index // 7) == reference.add(event_id, index // 7)
    assert len(compiled) == len(reference) == min(capacity, len(set(ids)))
    assert [event_id in compiled for event_id in ids] == [event_id in reference for event_id in ids]
    compiled.expire(10_000 + count // 14)
    reference.expire(10_000 + count // 14)
    assert len(compiled) == len(reference)
    assert [event_id in compiled for event_id in ids] == [event_id in reference for event_id in ids]


def test_a_window_that_empties_after_a_burst_takes_ids_again() -> None:
    """Expiring a large window gives back its spare room and keeps every answer."""
    compiled = native.DedupWindow(100, 50_000)
    burst = [str(uuid.uuid4()) for _ in range(20_000)]
    compiled.add_all(burst, 0)
    compiled.expire(1_000)
    assert len(compiled) == 0
    assert all(event_id not in compiled for event_id in burst[:100])
    assert compiled.add(burst[0], 1_000)
    assert not compiled.add(burst[0], 1_001)
    assert len(compiled) == 1


def test_a_long_run_of_ids_agrees_with_the_reference_through_growth_and_deletion() -> None:
    """Tens of thousands of ids through a small window: the compiled index grows, wraps,
    shifts entries back as the oldest leave and shrinks after an expiry, and every
    answer stays the reference's (re-sent ids included, old and recent)."""
    rng = random.Random(20261201)
    reference = DedupWindow(5_000, 3_000)
    compiled = native.DedupWindow(5_000, 3_000)
    sent: list[str] = []
    clock = 0
    for step in range(40_000):
        clock += rng.choice((0, 0, 0, 1, 2))
        if step % 9_000 == 8_999:
            clock += 6_000  # everything expires
        if rng.random() < 0.2 and sent:
            event_id = sent[-rng.randrange(1, min(len(sent), 5_000) + 1)]
        elif rng.random() < 0.1:
            event_id = f"order-{step}"
        else:
            event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        sent.append(event_id)
        assert compiled.add(event_id, clock) == reference.add(event_id, clock), step
        if step % 500 == 0:
            compiled.expire(clock)
            reference.expire(clock)
            assert len(compiled) == len(reference)
    probe = sent[-6_000:]
    assert [event_id in compiled for event_id in probe] == [
        event_id in reference for event_id in probe
    ]


def test_a_window_beyond_what_positions_can_count_is_refused() -> None:
    with pytest.raises(ValueError, match="dedup capacity"):
        native.DedupWindow(1000, 2**32)


def test_add_all_remembers_every_id() -> None:
    compiled = native.DedupWindow(1000, 10)
    compiled.add_all(["a", "b", "c"], 5)
    assert len(compiled) == 3
    assert not compiled.add("b", 6)
    compiled.expire(1006)
    assert len(compiled) == 0


@settings(max_examples=300)
@given(
    st.binary(min_size=1, max_size=64),
    st.text(max_size=30),
    st.none() | st.binary(max_size=40),
    st.binary(max_size=300),
)
def test_signatures_are_the_reference_signatures(
    key: bytes, event_type: str, record_key: bytes | None, value: bytes
) -> None:
    expected = sign_event(key, event_type, record_key, value)
    assert native.event_signature(key, event_type, record_key, value) == expected
    assert native.signature_matches(key, event_type, record_key, value, expected)
    tampered = bytes([expected[0] ^ 1]) + expected[1:]
    assert not native.signature_matches(key, event_type, record_key, value, tampered)
    assert not native.signature_matches(key, event_type, record_key, value, expected[:-1])
    moved = (record_key or b"") + b"x"
    assert not native.signature_matches(key, event_type, moved, value, expected)


@settings(max_examples=500)
@given(st.binary(max_size=40), st.integers(1, 64))
def test_key_partitions_are_the_reference_partitions(key: bytes, partitions: int) -> None:
    assert native.murmur2(key) == murmur2(key)
    assert native.key_partition(key, partitions) == key_partition(key, partitions)


def test_murmur2_matches_kafkas_published_values() -> None:
    # Values of Kafka's own Utils.murmur2 test vectors.
    assert native.murmur2(b"21") == -973932308
    assert native.murmur2(b"foobar") == -790332482
    assert native.murmur2(b"a-little-bit-long-string") == -985981536
