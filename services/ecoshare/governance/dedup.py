"""The duplicate-id window of one ingress partition (pure; time passed in)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class DedupWindow:
    """Event ids seen within ``window_ms`` of processing time, at most ``capacity`` of them.

    Publishers retry, so the same event id may arrive twice; the first wins. Ids leave
    the window when older than ``window_ms`` or when the window is full (oldest first),
    which bounds memory whatever the input rate. Ids are kept in arrival order with one
    time stamp per run of ids added at the same moment (a batch), so the window costs a
    set entry and a deque slot per id, nothing more.
    """

    __slots__ = ("_ids", "_runs", "_seen", "capacity", "window_ms")

    def __init__(self, window_ms: int, capacity: int) -> None:
        self.window_ms = window_ms
        self.capacity = capacity
        self._seen: set[str] = set()
        self._ids: deque[str] = deque()
        self._runs: deque[list[int]] = deque()  # [at_ms, number of ids] in arrival order

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen

    def add(self, event_id: str, at_ms: int) -> bool:
        """Remember ``event_id``; False if it was already in the window (a duplicate)."""
        seen = self._seen
        if event_id in seen:
            return False
        seen.add(event_id)
        self._ids.append(event_id)
        runs = self._runs
        if runs and runs[-1][0] == at_ms:
            runs[-1][1] += 1
        else:
            runs.append([at_ms, 1])
        if len(self._ids) > self.capacity:
            self._drop_oldest(1)
        return True

    def add_all(self, event_ids: Iterable[str], at_ms: int) -> None:
        for event_id in event_ids:
            self.add(event_id, at_ms)

    def _drop_oldest(self, count: int) -> None:
        ids, runs, seen = self._ids, self._runs, self._seen
        for _ in range(count):
            seen.discard(ids.popleft())
            runs[0][1] -= 1
            if not runs[0][1]:
                runs.popleft()

    def expire(self, now_ms: int) -> None:
        """Forget ids seen more than ``window_ms`` before ``now_ms``."""
        horizon = now_ms - self.window_ms
        runs = self._runs
        while runs and runs[0][0] < horizon:
            self._drop_oldest(runs[0][1])
