"""The ledger's acknowledged ids keep runs of SDK ids (canonical UUIDs) packed and give
back exactly what they were given: the same strings, runs, ages and capacity as a
plain list of runs would."""

from __future__ import annotations

import uuid
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from ecoshare.governance.progress import AcknowledgedIds, Checkpoint, IdRun, snapshot_chunks

_UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
_LOOK_ALIKES = (
    _UUID.upper(),
    _UUID.replace("-", ""),
    "{" + _UUID + "}",
    _UUID[:-1] + "g",
    _UUID + "0",
    "0f8fad5bd-9cb-469f-a165-70867728950e",  # 36 characters, a hyphen moved
    _UUID[:-1] + " ",
    _UUID[:-1] + "é",
    _UUID.replace("-", "0", 1)[:-1] + "-",  # four hyphens, one out of place
    "order-1",
    "",
)


class _PlainRuns:
    """The reference: runs kept as given, the same expiry and capacity arithmetic."""

    def __init__(self, window_ms: int, capacity: int) -> None:
        self.window_ms, self.capacity = window_ms, capacity
        self.runs: deque[IdRun] = deque()
        self.count = 0

    def add(self, at_ms: int, ids: tuple[str, ...]) -> None:
        if ids:
            self.runs.append((at_ms, ids))
            self.count += len(ids)
        self.expire(at_ms)

    def expire(self, now_ms: int) -> None:
        runs, horizon = self.runs, now_ms - self.window_ms
        while runs and (runs[0][0] < horizon or self.count - len(runs[0][1]) >= self.capacity):
            self.count -= len(runs.popleft()[1])
        if runs and self.count > self.capacity:
            at_ms, ids = runs[0]
            excess = self.count - self.capacity
            runs[0] = (at_ms, ids[excess:])
            self.count -= excess


_ids = st.one_of(
    st.integers(0, 2**128 - 1).map(lambda n: str(uuid.UUID(int=n))),
    st.sampled_from(_LOOK_ALIKES),
    st.text(max_size=40),
)
_batches = st.lists(
    st.tuples(
        st.integers(0, 30),
        st.one_of(
            st.lists(st.integers(0, 2**128 - 1).map(lambda n: str(uuid.UUID(int=n))), max_size=6),
            st.lists(_ids, max_size=6),
        ),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(_batches, st.integers(1, 12), st.integers(0, 60))
def test_packed_runs_equal_plain_runs(
    batches: list[tuple[int, list[str], bool]], capacity: int, window_ms: int
) -> None:
    packed, plain = AcknowledgedIds(window_ms, capacity), _PlainRuns(window_ms, capacity)
    clock = 0
    for step, ids, expire in batches:
        clock += step
        if expire:
            packed.expire(clock)
            plain.expire(clock)
        else:
            packed.add(clock, tuple(ids))
            plain.add(clock, tuple(ids))
        assert len(packed) == plain.count
        assert list(packed) == list(plain.runs)
    restored = AcknowledgedIds(window_ms, capacity, packed)
    assert list(restored) == list(plain.runs)


def test_a_snapshot_of_packed_runs_carries_the_original_strings() -> None:
    ids = tuple(str(uuid.uuid4()) for _ in range(7))
    window = AcknowledgedIds(1000, 100, [(5, ids), (6, ("order-1", ids[0].upper()))])
    chunks = list(snapshot_chunks(Checkpoint(1, {}, (), 6, 0), window, 0, 4))
    assert [chunk.chunks for chunk in chunks] == [3, 3, 3]  # 9 ids, 4 a chunk
    flat = [event_id for chunk in chunks for _, run in chunk.runs for event_id in run]
    assert flat == [*ids, "order-1", ids[0].upper()]
    assert all(isinstance(event_id, str) for event_id in flat)
