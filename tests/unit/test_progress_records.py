"""The progress log's records and the arithmetic of a takeover (pure, and the
backwards reader over the in-memory fake log)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ecoshare.config.topics import TopicNames
from ecoshare.governance.progress import (
    AcknowledgedIds,
    Checkpoint,
    SnapshotChunk,
    SnapshotPolicy,
    fold_progress,
    parse_offsets,
    parse_progress_key,
    snapshot_chunks,
    source_key,
)
from ecoshare.governance.recovery import read_progress
from ecoshare.governance.topics import governed_topics
from tests.unit.fake_kafka_for_worker import FakeLog, FakeReader

SOURCE = ("ingress.StoreStatusChanged", 2)
OTHER = ("ingress.LocationAvailability", 2)
PROGRESS = "ecoshare.progress"


def _records(*pairs: tuple[bytes, bytes]) -> list[tuple[int, bytes, bytes]]:
    return [(offset, key, value) for offset, (key, value) in enumerate(pairs)]


def _checkpoint(seq: int, next_offset: int, ids: tuple[str, ...] = (), at_ms: int = 0):
    checkpoint = Checkpoint(next_offset, {"ecoshare.audit": next_offset * 2}, ids, at_ms, seq)
    return checkpoint.key(SOURCE, 8), checkpoint.encode()


def _snapshot(seq: int, bank: int, next_offset: int, runs, per_chunk: int = 2):
    checkpoint = Checkpoint(next_offset, {"ecoshare.audit": next_offset * 2}, (), 5, seq)
    return [
        (chunk.key(SOURCE), chunk.encode())
        for chunk in snapshot_chunks(checkpoint, runs, bank, per_chunk)
    ]


def test_a_checkpoint_and_a_snapshot_chunk_survive_encoding() -> None:
    checkpoint = Checkpoint(42, {"ecoshare.audit": 7}, ("a", "b"), 1000, 9)
    assert Checkpoint.decode(checkpoint.encode()) == checkpoint
    chunk = SnapshotChunk(9, 1, 0, 2, 42, {"ecoshare.audit": 7}, ((1000, ("a", "b")),), 1000)
    assert SnapshotChunk.decode(chunk.encode()) == chunk


def test_a_checkpoint_of_the_format_before_snapshots_decodes_without_a_seq() -> None:
    old = b'{"next_offset":3,"outputs":{"a":1},"event_ids":["x"],"at_ms":9}'
    assert Checkpoint.decode(old) == Checkpoint(3, {"a": 1}, ("x",), 9, -1)


def test_keys_name_their_partition_and_kind() -> None:
    assert parse_progress_key(source_key(*SOURCE)) == (SOURCE, "legacy")
    assert parse_progress_key(Checkpoint(0, {}, seq=17).key(SOURCE, 8)) == (SOURCE, "c")
    assert Checkpoint(0, {}, seq=17).key(SOURCE, 8).endswith(b"/c/1")
    chunk = SnapshotChunk(3, 1, 4, 5, 0, {}, (), 0)
    assert parse_progress_key(chunk.key(SOURCE)) == (SOURCE, "s")
    assert parse_progress_key(b"no-partition") is None
    assert parse_progress_key(b"topic:1/x/0") is None


def test_offsets_headers_hold_numbers_and_ranges() -> None:
    assert parse_offsets("3,5-7,,10") == {3, 5, 6, 7, 10}


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.lists(st.text(min_size=1, max_size=3), max_size=7)),
        max_size=6,
    ),
    st.integers(1, 5),
)
def test_snapshot_chunks_hold_every_id_once_in_order_within_the_chunk_size(
    runs: list[tuple[int, list[str]]], per_chunk: int
) -> None:
    window = [(at_ms, tuple(ids)) for at_ms, ids in runs]
    chunks = list(snapshot_chunks(Checkpoint(1, {}, (), 0, 4), window, 1, per_chunk))
    assert [chunk.chunk for chunk in chunks] == list(range(len(chunks)))
    assert all(chunk.chunks == len(chunks) for chunk in chunks)
    assert all(sum(len(ids) for _, ids in chunk.runs) <= per_chunk for chunk in chunks)
    flat = [(at, i) for chunk in chunks for at, ids in chunk.runs for i in ids]
    assert flat == [(at, i) for at, ids in window for i in ids]


def test_the_latest_complete_snapshot_and_the_checkpoints_after_it_make_the_progress() -> None:
    records = _records(
        _checkpoint(0, 10, ("old",), 1),
        *_snapshot(1, 0, 20, [(2, ("a", "b", "c"))]),
        _checkpoint(2, 30, ("d",), 3),
        _checkpoint(3, 40, ("e", "f"), 4),
    )
    progress = fold_progress(records, [SOURCE, OTHER])
    found = progress[SOURCE]
    assert found.complete
    assert found.last is not None and found.last.next_offset == 40
    assert found.runs == [(2, ("a", "b")), (2, ("c",)), (3, ("d",)), (4, ("e", "f"))]
    assert (found.snapshot_seq, found.next_seq, found.next_bank) == (1, 4, 1)
    assert not progress[OTHER].complete and progress[OTHER].last is None


def test_a_snapshot_cut_short_by_a_crash_leaves_the_previous_one_in_force() -> None:
    whole = _snapshot(1, 0, 20, [(2, ("a", "b", "c"))])
    cut = _snapshot(3, 1, 40, [(2, ("a", "b", "c")), (4, ("d", "e"))])[:1]
    records = _records(*whole, _checkpoint(2, 30, ("d",), 3), *cut)
    found = fold_progress(records, [SOURCE])[SOURCE]
    assert found.snapshot_seq == 1
    assert found.last is not None and found.last.next_offset == 30
    assert [i for _, ids in found.runs for i in ids] == ["a", "b", "c", "d"]
    # The next snapshot overwrites the cut one's bank, never the one in force.
    assert (found.next_seq, found.next_bank) == (4, 1)


def test_leftover_chunks_of_an_older_snapshot_in_a_bank_do_not_count() -> None:
    older = _snapshot(1, 0, 20, [(2, ("a", "b", "c", "d", "e"))])  # three chunks
    newer = _snapshot(5, 0, 50, [(6, ("x",))])  # one chunk, same bank
    found = fold_progress(_records(*older, *newer), [SOURCE])[SOURCE]
    assert found.snapshot_seq == 5 and found.runs == [(6, ("x",))]


def test_without_a_snapshot_every_checkpoint_read_counts() -> None:
    legacy = Checkpoint(5, {"a": 1}, ("x",), 1)
    records = _records((source_key(*SOURCE), legacy.encode()), _checkpoint(0, 9, ("y",), 2))
    found = fold_progress(records, [SOURCE])[SOURCE]
    assert not found.complete
    assert found.last is not None and found.last.next_offset == 9
    assert found.runs == [(1, ("x",)), (2, ("y",))]


def test_the_snapshot_policy_bounds_checkpoints_and_amortises_the_window() -> None:
    policy = SnapshotPolicy(every_batches=4, ids_per_chunk=10)
    assert not policy.due(batches_since=2, ids_since=5, window_ids=100)
    assert policy.due(batches_since=3, ids_since=0, window_ids=100)  # the ring is full
    assert policy.due(batches_since=1, ids_since=100, window_ids=100)  # rewrite amortised
    assert not policy.due(batches_since=1, ids_since=9, window_ids=0)  # tiny windows wait


def test_acknowledged_ids_forget_by_age_and_beyond_capacity() -> None:
    ids = AcknowledgedIds(window_ms=100, capacity=5)
    ids.add(0, ("a", "b"))
    ids.add(50, ("c", "d"))
    assert list(ids) == [(0, ("a", "b")), (50, ("c", "d"))]
    ids.add(60, ("e", "f"))  # six ids: the oldest goes
    assert list(ids) == [(0, ("b",)), (50, ("c", "d")), (60, ("e", "f"))] and len(ids) == 5
    ids.expire(120)  # older than 100 ms: the run at 0 goes
    assert list(ids) == [(50, ("c", "d")), (60, ("e", "f"))] and len(ids) == 4


def _progress_log(batches: int, policy: SnapshotPolicy) -> FakeLog:
    """``batches`` checkpoints of SOURCE and OTHER, a snapshot as the policy says."""
    log = FakeLog(4)
    for seq in range(batches):
        for source in (SOURCE, OTHER):
            checkpoint = Checkpoint(seq + 1, {}, (f"{source[0]}-{seq}",), seq, seq)
            if seq % policy.every_batches == 0:
                runs = [(n, (f"{source[0]}-{n}",)) for n in range(seq + 1)]
                for chunk in snapshot_chunks(checkpoint, runs, (seq // 4) % 2, 1000):
                    log.append(PROGRESS, 2, chunk.key(source), chunk.encode(), None)
            else:
                key = checkpoint.key(source, policy.every_batches)
                log.append(PROGRESS, 2, key, checkpoint.encode(), None)
    return log


def test_a_takeover_reads_back_to_the_latest_snapshot_only() -> None:
    policy = SnapshotPolicy(every_batches=4)
    log = _progress_log(500, policy)
    found, read = read_progress(FakeReader(log), PROGRESS, [SOURCE, OTHER], policy)
    assert read <= 2 * (policy.every_batches + 2) + log.end_shortfall
    for source in (SOURCE, OTHER):
        assert found[source].last is not None and found[source].last.next_offset == 500
        assert [i for _, ids in found[source].runs for i in ids] == [
            f"{source[0]}-{n}" for n in range(500)
        ]


def test_the_reader_goes_further_back_until_a_snapshot_is_complete() -> None:
    policy = SnapshotPolicy(every_batches=4)
    log = _progress_log(40, policy)
    for seq in range(40, 100):  # a long run of checkpoints, as a log before snapshots
        checkpoint = Checkpoint(seq + 1, {}, (f"late-{seq}",), seq, seq)
        log.append(PROGRESS, 2, checkpoint.key(SOURCE, 1000), checkpoint.encode(), None)
    found, read = read_progress(FakeReader(log), PROGRESS, [SOURCE], policy)
    assert found[SOURCE].complete and found[SOURCE].snapshot_seq == 36
    assert found[SOURCE].last is not None and found[SOURCE].last.next_offset == 100
    assert read < len(log.partitions[(PROGRESS, 2)])


def test_the_progress_topic_is_created_compacted() -> None:
    names = TopicNames("t.")
    specs = {spec.name: spec for spec in governed_topics(names, ["StoreStatusChanged"], 4)}
    assert specs[names.progress].config == {"cleanup.policy": "compact"}
    assert specs[names.progress].partitions == 4
