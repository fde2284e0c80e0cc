"""One platform per state directory: an exclusive lock held while a platform runs there.

``ecoshare up`` writes ``endpoints.json``, logs and secrets into its state directory;
a second platform on the same directory would overwrite the first one's endpoints and
delete them when it stops, orphaning the first. The lock is an advisory ``flock`` on
``<state dir>/platform.lock``: the kernel releases it when its holder exits, however
it exits, so a crashed platform never leaves a stale lock behind. The file records the
holder's pid for the message shown to the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ecoshare.errors import EcoshareError

LOCK_FILE = "platform.lock"


class StateDirBusyError(EcoshareError):
    """Another platform runs on this state directory."""


class StateDirLock:
    """An exclusive, non-blocking lock on a state directory. Acquire, then release."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StateDirLock:
        """Take the lock; StateDirBusyError naming the holder when another process has it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StateDirBusyError(
                f"a platform already runs on state directory {self.state_dir} (pid {holder}); "
                "stop it first, or start this one with another ECOSHARE_STATE_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None
