"""The benchmark's CPU accounting reads what the kernel charged to a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.cpu import CpuMeter, process_cpu_seconds


def _burn(cpu_seconds: float) -> None:
    until = time.process_time() + cpu_seconds
    while time.process_time() < until:
        pass


def test_own_cpu_seconds_grow_with_work_done() -> None:
    before = process_cpu_seconds(os.getpid())
    _burn(0.3)
    # /proc counts in clock ticks (usually 10 ms): allow one tick of rounding.
    assert process_cpu_seconds(os.getpid()) - before >= 0.25


def test_a_process_that_is_gone_reads_as_zero() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_cpu_seconds(child.pid) == 0.0
    assert process_cpu_seconds(None) == 0.0


def test_meter_charges_each_named_process_only_its_own_cpu() -> None:
    # Both say "ready" once started, then wait for a line on stdin; only "busy" then
    # works. The meter starts after both said so: their start-up is never measured, however
    # long a loaded machine makes it.
    busy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "t = time.process_time() + 0.3\n"
            "while time.process_time() < t: pass\n"
            "time.sleep(30)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    idle = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; print('ready', flush=True); sys.stdin.readline(); time.sleep(30)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        for child in (busy, idle):
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
        meter = CpuMeter({"busy": busy.pid, "idle": idle.pid}).start()
        started = process_cpu_seconds(busy.pid)
        for child in (busy, idle):
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.flush()
        deadline = time.monotonic() + 30
        while process_cpu_seconds(busy.pid) - started < 0.28 and time.monotonic() < deadline:
            time.sleep(0.05)
        figures = meter.stop()
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    assert set(figures) == {"busy", "idle"}
    assert figures["busy"] >= 0.25
    assert figures["idle"] < 0.05
