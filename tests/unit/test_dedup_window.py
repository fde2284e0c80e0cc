"""DedupWindow: the first of an event id wins within the window, memory stays bounded."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from ecoshare.governance.dedup import DedupWindow


def test_a_repeated_id_is_a_duplicate_and_a_new_one_is_not() -> None:
    window = DedupWindow(window_ms=1_000, capacity=10)
    assert window.add("e-1", at_ms=0) is True
    assert window.add("e-1", at_ms=5) is False
    assert window.add("e-2", at_ms=5) is True
    assert "e-1" in window
    assert "e-3" not in window
    assert len(window) == 2


def test_ids_older_than_the_window_expire_and_may_come_again() -> None:
    window = DedupWindow(window_ms=1_000, capacity=10)
    window.add("old", at_ms=0)
    window.add("new", at_ms=600)
    window.expire(now_ms=1_000)  # "old" is exactly window_ms old: still in
    assert "old" in window
    window.expire(now_ms=1_001)
    assert "old" not in window
    assert "new" in window
    assert window.add("old", at_ms=1_001) is True


def test_a_full_window_forgets_its_oldest_id_first() -> None:
    window = DedupWindow(window_ms=60_000, capacity=3)
    for number in range(4):
        window.add(f"e-{number}", at_ms=number)
    assert len(window) == 3
    assert "e-0" not in window
    assert all(f"e-{number}" in window for number in (1, 2, 3))


def test_a_batch_shares_one_time_stamp_and_expires_together() -> None:
    window = DedupWindow(window_ms=100, capacity=100)
    window.add_all(["a", "b", "c"], at_ms=0)
    window.add_all(["d"], at_ms=50)
    window.expire(now_ms=101)
    assert len(window) == 1
    assert "d" in window


def test_capacity_eviction_inside_a_batch_keeps_the_later_ids() -> None:
    window = DedupWindow(window_ms=100, capacity=2)
    window.add_all(["a", "b", "c"], at_ms=0)
    assert sorted(window._seen) == ["b", "c"]
    # The run of the batch was shortened, not lost: the two ids still expire with it.
    window.expire(now_ms=101)
    assert len(window) == 0


@dataclass
class ReferenceWindow:
    """The window's law, written plainly: arrival-ordered (id, time) pairs."""

    window_ms: int
    capacity: int
    kept: list[tuple[str, int]] = field(default_factory=list)

    def add(self, event_id: str, at_ms: int) -> bool:
        if any(kept_id == event_id for kept_id, _ in self.kept):
            return False
        self.kept.append((event_id, at_ms))
        if len(self.kept) > self.capacity:
            del self.kept[0]
        return True

    def expire(self, now_ms: int) -> None:
        self.kept = [(i, at) for i, at in self.kept if at >= now_ms - self.window_ms]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcdefgh"), st.integers(0, 30)),
        st.tuples(st.just("expire"), st.just(""), st.integers(0, 30)),
    ),
    max_size=60,
)


@given(
    window_ms=st.integers(0, 40),
    capacity=st.integers(1, 6),
    steps=operations,
)
def test_the_window_behaves_like_its_plain_reference(
    window_ms: int, capacity: int, steps: list[tuple[str, str, int]]
) -> None:
    window = DedupWindow(window_ms, capacity)
    reference = ReferenceWindow(window_ms, capacity)
    now = 0
    for operation, event_id, advance in steps:
        now += advance  # processing time never runs backwards
        if operation == "add":
            assert window.add(event_id, now) == reference.add(event_id, now)
        else:
            window.expire(now)
            reference.expire(now)
        assert {i for i, _ in reference.kept} == window._seen
        assert len(window) <= capacity
        assert sum(count for _, count in window._runs) == len(window._ids) == len(window)
