"""Partition pauses measured by the fault tests, printed in the test session's summary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartitionPause:
    broker: str
    fault: str
    partition: int
    seconds: float
    seen_seconds: float
    events: int


PAUSES: list[PartitionPause] = []


def pause_lines() -> list[str]:
    return [
        f"{pause.broker:<16} {pause.fault:<40} longest pause {pause.seconds:5.1f} s produced,"
        f" {pause.seen_seconds:5.1f} s as read (partition {pause.partition}, "
        f"{pause.events} events)"
        for pause in PAUSES
    ]
