"""System programs the integration tier needs, found or failed for clearly.

They come from Debian packages that ``.ci/install-system-packages`` installs; CI
installs them, so a missing one is a broken set-up and fails the test, never skips it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def prometheus_tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool`` (Debian package prometheus)."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
    )
    if found is None:
        pytest.fail(
            f"{name} not found: run .ci/install-system-packages (Debian package prometheus)"
        )
    return found
