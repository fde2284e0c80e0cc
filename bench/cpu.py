"""CPU seconds of processes, read from /proc (utime + stime), and the machine's load."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds ``pid`` has used so far; 0.0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


class CpuMeter:
    """CPU seconds per named process between :meth:`start` and :meth:`stop`.

    A process that exits before :meth:`stop` is read as 0 then; callers read
    short-lived processes (load generator, reader) with :meth:`stop` before they exit.
    """

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._pids = dict(pids)
        self._before: dict[str, float] = {}

    def add(self, name: str, pid: int | None) -> None:
        self._pids[name] = pid
        self._before[name] = process_cpu_seconds(pid)

    def start(self) -> CpuMeter:
        self._before = {name: process_cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        return {
            name: round(process_cpu_seconds(pid) - self._before.get(name, 0.0), 3)
            for name, pid in self._pids.items()
        }
