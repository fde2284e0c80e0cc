"""The compiled duplicate window, signature check and key partitioner equal their
Python references."""

from __future__ import annotations

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
    reference = DedupWindow(window_ms, capacity)
    compiled = native.DedupWindow(window_ms, capacity)
    clock = 0
    for operation, event_id, step in operations:
        clock += step
        if operation == "add":
            assert compiled.add(event_id, clock) == reference.add(event_id, clock)
        else:
            compiled.expire(clock)
            reference.expire(clock)
        assert len(compiled) == len(reference)
        assert all((name in compiled) == (name in reference) for name in "abcdefghij")
    assert (42 in compiled) is False  # only strings are event ids


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
