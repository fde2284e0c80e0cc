"""AgreementRateLimiter: a token bucket per minute and a count per UTC day, under an
explicit clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ecoshare.domain.agreements import Limits
from ecoshare.domain.policy import AgreementRateLimiter

T0 = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)


def test_per_minute_allows_a_burst_then_refills_continuously() -> None:
    limiter = AgreementRateLimiter()
    limits = Limits(max_events_per_minute=6)
    assert [limiter.try_acquire("a", limits, T0) for _ in range(7)] == [True] * 6 + [False]
    assert not limiter.try_acquire("a", limits, T0 + timedelta(seconds=9, milliseconds=999))
    assert limiter.try_acquire("a", limits, T0 + timedelta(seconds=10))
    assert not limiter.try_acquire("a", limits, T0 + timedelta(seconds=10))


def test_per_day_counts_per_utc_calendar_day() -> None:
    limiter = AgreementRateLimiter()
    limits = Limits(max_events_per_day=2)
    late = datetime(2020, 3, 16, 23, 59, tzinfo=UTC)
    assert limiter.try_acquire("a", limits, late)
    assert limiter.try_acquire("a", limits, late)
    assert not limiter.try_acquire("a", limits, late + timedelta(seconds=59))
    assert limiter.try_acquire("a", limits, late + timedelta(minutes=1))


def test_agreements_have_separate_allowances() -> None:
    limiter = AgreementRateLimiter()
    limits = Limits(max_events_per_day=1)
    assert limiter.try_acquire("a", limits, T0)
    assert limiter.try_acquire("b", limits, T0)
    assert not limiter.try_acquire("a", limits, T0)
    limiter.forget("a")
    assert limiter.try_acquire("a", limits, T0)


def test_a_refusal_consumes_nothing() -> None:
    limiter = AgreementRateLimiter()
    limits = Limits(max_events_per_minute=1, max_events_per_day=1)
    assert limiter.try_acquire("a", limits, T0)
    assert not limiter.try_acquire("a", limits, T0 + timedelta(minutes=5))
    assert limiter.try_acquire("a", Limits(max_events_per_minute=1), T0 + timedelta(minutes=5))


def test_time_going_backwards_refills_nothing() -> None:
    limiter = AgreementRateLimiter()
    limits = Limits(max_events_per_minute=1)
    assert limiter.try_acquire("a", limits, T0)
    assert not limiter.try_acquire("a", limits, T0 - timedelta(hours=1))
    assert not limiter.try_acquire("a", limits, T0 + timedelta(seconds=59))
    assert limiter.try_acquire("a", limits, T0 + timedelta(seconds=60))


@given(
    per_minute=st.integers(1, 20),
    gaps=st.lists(st.integers(0, 20_000), min_size=1, max_size=200),
)
def test_per_minute_never_exceeds_burst_plus_refill(per_minute: int, gaps: list[int]) -> None:
    limiter = AgreementRateLimiter()
    limits = Limits(max_events_per_minute=per_minute)
    moment, accepted = T0, []
    for gap in gaps:
        moment += timedelta(milliseconds=gap)
        if limiter.try_acquire("a", limits, moment):
            accepted.append(moment)
    # Any window [s, e] holds at most N (the bucket) + N * (e - s) / 60 s (the refill).
    for i, start in enumerate(accepted):
        for j in range(i, len(accepted)):
            elapsed_ms = (accepted[j] - start) / timedelta(milliseconds=1)
            assert j - i + 1 <= per_minute + per_minute * elapsed_ms / 60_000


@given(per_minute=st.integers(1, 20), count=st.integers(1, 100))
def test_events_spaced_by_the_refill_period_are_never_refused(per_minute: int, count: int) -> None:
    limiter = AgreementRateLimiter()
    limits = Limits(max_events_per_minute=per_minute)
    spacing = timedelta(milliseconds=-(-60_000 // per_minute))
    assert all(limiter.try_acquire("a", limits, T0 + spacing * n) for n in range(count))
