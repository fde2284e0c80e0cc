"""Partition pauses measured by the fault tests, printed in the test session's summary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartitionPause:
    broker: str
    fault: str
    partition: int
    seconds: float
    events: int


PAUSES: list[PartitionPause] = []


def pause_lines() -> list[str]:
    return [
        f"{pause.broker:<16} {pause.fault:<40} longest pause {pause.seconds:6.1f} s "
        f"(delivery partition {pause.partition}, {pause.events} events)"
        for pause in PAUSES
    ]
