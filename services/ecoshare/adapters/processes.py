"""Child processes that never outlive their parent.

Every child starts in its own process group, so stopping it stops whatever it spawned.
On Linux the child also asks the kernel for SIGTERM when its parent dies (even by
SIGKILL), so a crashed test run or platform leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, tied to this process's life."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out: int | object = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    else:
        out = subprocess.DEVNULL
    return subprocess.Popen(
        list(argv),
        stdout=out,  # type: ignore[arg-type]
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        preexec_fn=_die_with_parent,
    )


def stop(process: subprocess.Popen[bytes], *, grace_seconds: float = 5.0) -> int | None:
    """Stop a child and its whole process group: SIGTERM, then SIGKILL after the grace."""
    if process.poll() is not None:
        return process.returncode
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=grace_seconds)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child's process group at once (crash simulation)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


class ChildService:
    """Life cycle shared by the platform's child processes (broker, registry, workers).

    Subclasses set ``_process`` in ``start()`` (returning ``self``); stopping is the same
    for all of them: the whole process group, politely, then by force.
    """

    _process: subprocess.Popen[bytes] | None = None
    stop_grace_seconds: float = 5.0

    def start(self) -> ChildService:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process, grace_seconds=self.stop_grace_seconds)
            self._process = None

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash would."""
        if self._process is not None:
            kill(self._process)
            self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
