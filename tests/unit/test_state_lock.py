"""One platform per state directory: the lock `ecoshare up` holds while it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ecoshare.embedded.state_lock import StateDirBusyError, StateDirLock


def test_a_second_holder_of_the_same_state_dir_is_refused_with_the_first_ones_pid(
    tmp_path: Path,
) -> None:
    first = StateDirLock(tmp_path).acquire()
    with pytest.raises(StateDirBusyError, match=r"already runs on state directory .* \(pid \d+\)"):
        StateDirLock(tmp_path).acquire()
    first.release()
    again = StateDirLock(tmp_path).acquire()
    assert again.held
    again.release()


def test_separate_state_dirs_run_side_by_side(tmp_path: Path) -> None:
    one = StateDirLock(tmp_path / "one").acquire()
    two = StateDirLock(tmp_path / "two").acquire()
    assert one.held and two.held
    one.release()
    two.release()


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    # A platform that crashed leaves no stale lock: the kernel drops it with the process.
    holder = (
        "import sys; from pathlib import Path;"
        " from ecoshare.embedded.state_lock import StateDirLock;"
        f"StateDirLock(Path({str(tmp_path)!r})).acquire(); sys.exit(3)"
    )
    assert subprocess.run([sys.executable, "-c", holder], check=False).returncode == 3
    lock = StateDirLock(tmp_path).acquire()
    assert lock.held
    lock.release()
