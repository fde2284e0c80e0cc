"""``make bench-broker-profile``: where the Apache Kafka broker's CPU goes while the
platform is governing at a light rate.

The broker is the largest CPU share of every ``make bench`` latency phase. This runs the
2,000 events/s latency phase of ``make bench`` (fresh topics, two workers, the load
generator and the reader; ``BENCH_PROFILE_MODE`` ``auto`` for transactions or
``checkpoints``) and records the broker with Java Flight Recorder (``jcmd JFR.start``)
from ``PROFILE_DELAY_SECONDS`` after the phase starts, for ``PROFILE_SECONDS``. Prints
and writes to bench/profile-kafka-broker.txt the latency, the CPU seconds per process,
and the broker's execution samples: the hottest frames by own time and by inclusive
time. Needs the JDK's ``jcmd`` and ``jfr`` (they come with the JDK that runs Kafka).
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.governed_throughput import OUT, Scene, log, started_run

RATE = float(os.environ.get("BENCH_PROFILE_RATE", "2000"))
MODE = os.environ.get("BENCH_PROFILE_MODE", "auto")
PROFILE_DELAY_SECONDS = 5.0
PROFILE_SECONDS = 8  # ends before the 15 s phase does
TOP = 30
_FRAME = re.compile(r"^\s+([\w$.<>]+)\(", re.MULTILINE)


def record(pid: int, path: Path) -> None:
    """JFR on ``pid`` for PROFILE_SECONDS (Java threads sampled every 10 ms)."""
    subprocess.run(
        [
            "jcmd",
            str(pid),
            "JFR.start",
            "name=ecoshare-bench",
            "settings=profile",
            f"duration={PROFILE_SECONDS}s",
            f"filename={path}",
        ],
        check=True,
        capture_output=True,
    )


def hottest(jfr_file: Path) -> str:
    """The execution samples summed: own time (top frame) and inclusive time."""
    printed = subprocess.run(
        ["jfr", "print", "--events", "jdk.ExecutionSample", str(jfr_file)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = printed.split("jdk.ExecutionSample")[1:]
    for sample in samples:
        frames = _FRAME.findall(sample)
        if not frames:
            continue
        own[frames[0]] += 1
        for frame in set(frames):
            inclusive[frame] += 1
    total = max(1, len(samples))
    lines = [f"{len(samples)} execution samples of the broker's Java threads", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(TOP)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(TOP)]
    return "\n".join(lines)


def main() -> int:
    if shutil.which("jcmd") is None or shutil.which("jfr") is None:
        log("jcmd and jfr (from the JDK) are needed")
        return 1
    with (
        contextlib.ExitStack() as stack,
        started_run("kafka", Scene(int(RATE * 20)), "bench-broker-profile") as run,
    ):
        jfr_file = run.state_dir / "broker.jfr"
        broker_pid = run.broker_pid
        assert broker_pid is not None
        start_workers = run.start_workers

        def start_then_record(*args: object, **kwargs: object) -> object:
            # The phase's clock starts once the workers own their partitions.
            workers = start_workers(*args, **kwargs)  # type: ignore[arg-type]
            timer = threading.Timer(PROFILE_DELAY_SECONDS, record, (broker_pid, jfr_file))
            timer.start()
            stack.callback(timer.cancel)
            return workers

        run.start_workers = start_then_record  # type: ignore[method-assign]
        log(f"latency phase at {RATE:,.0f} events/s ({MODE}), the broker under JFR")
        latency = run.latency("latency_light", RATE, MODE)
        cpu = run.cpu["latency_light"]
    deadline = time.monotonic() + 30
    while not jfr_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    report = "\n".join(
        [
            f"make bench-broker-profile: {RATE:,.0f} events/s, exactly-once {MODE}",
            f"latency p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
            f"missed {latency['missed']}",
            "CPU seconds: " + ", ".join(f"{name} {value:.2f}" for name, value in cpu.items()),
            "",
            hottest(jfr_file),
            "",
        ]
    )
    print(report)
    (OUT / "profile-kafka-broker.txt").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
