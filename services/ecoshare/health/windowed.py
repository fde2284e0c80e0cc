"""Counts over a trailing time window, in fixed buckets: memory bounded by
``window / bucket`` buckets of bounded keys, whatever the traffic."""

from __future__ import annotations

from collections import Counter

CountKey = tuple[str, str]
"""(measure, label) of a windowed count."""


class WindowedCounts:
    """Counts per key over a trailing window, in fixed time buckets.

    ``totals`` always equals the sum of the kept buckets. Buckets whose end is at or
    before ``horizon`` (``now - window`` of the latest :meth:`expire`) are dropped and
    never come back: a late arrival for an expired bucket is not counted.
    """

    __slots__ = ("_bucket_ms", "_buckets", "_horizon_ms", "_window_ms", "totals")

    def __init__(self, window_ms: int, bucket_ms: int) -> None:
        self._window_ms = window_ms
        self._bucket_ms = bucket_ms
        self._buckets: dict[int, Counter[CountKey]] = {}
        self._horizon_ms: int | None = None
        self.totals: Counter[CountKey] = Counter()

    def add(self, key: CountKey, at_ms: int, amount: int = 1) -> None:
        index = at_ms // self._bucket_ms
        if self._horizon_ms is not None and (index + 1) * self._bucket_ms <= self._horizon_ms:
            return
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = Counter()
        bucket[key] += amount
        self.totals[key] += amount

    def expire(self, now_ms: int) -> None:
        """Drop the buckets that end at or before ``now_ms - window``; never goes back."""
        horizon = now_ms - self._window_ms
        if self._horizon_ms is not None and horizon <= self._horizon_ms:
            return
        self._horizon_ms = horizon
        bucket_ms = self._bucket_ms
        for index in [i for i in self._buckets if (i + 1) * bucket_ms <= horizon]:
            bucket = self._buckets.pop(index)
            for key, amount in bucket.items():
                left = self.totals[key] - amount
                if left > 0:
                    self.totals[key] = left
                else:
                    del self.totals[key]

    def __len__(self) -> int:
        return len(self._buckets)
