"""The duplicate-id window of one ingress partition (pure; time passed in)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class DedupWindow:
    """Event ids seen within ``window_ms`` of processing time, at most ``capacity`` of them.

    Publishers retry, so the same event id may arrive twice; the first wins. Ids leave
    the window when older than ``window_ms`` or when the window is full (oldest first),
    which bounds memory whatever the input rate.
    """

    __slots__ = ("_order", "_seen", "capacity", "window_ms")

    def __init__(self, window_ms: int, capacity: int) -> None:
        self.window_ms = window_ms
        self.capacity = capacity
        self._seen: set[str] = set()
        self._order: deque[tuple[int, str]] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen

    def add(self, event_id: str, at_ms: int) -> bool:
        """Remember ``event_id``; False if it was already in the window (a duplicate)."""
        if event_id in self._seen:
            return False
        self._seen.add(event_id)
        self._order.append((at_ms, event_id))
        if len(self._order) > self.capacity:
            self._seen.discard(self._order.popleft()[1])
        return True

    def add_all(self, event_ids: Iterable[str], at_ms: int) -> None:
        for event_id in event_ids:
            self.add(event_id, at_ms)

    def expire(self, now_ms: int) -> None:
        """Forget ids seen more than ``window_ms`` before ``now_ms``."""
        horizon = now_ms - self.window_ms
        order = self._order
        while order and order[0][0] < horizon:
            self._seen.discard(order.popleft()[1])
