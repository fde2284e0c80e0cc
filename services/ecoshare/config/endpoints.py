"""The endpoints file a running ``ecoshare up`` writes into its state directory.

The platform writes it when it is ready and removes it when it stops; the CLI reads it
to find the platform without importing the platform (broker, registry, workers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecoshare.errors import EcoshareError

ENDPOINTS_FILE = "endpoints.json"


def read_endpoints(state_dir: Path) -> dict[str, Any]:
    """The endpoints a running ``ecoshare up`` wrote; EcoshareError if none is running."""
    path = state_dir / ENDPOINTS_FILE
    if not path.exists():
        raise EcoshareError(
            f"no running platform found ({path} is missing): start one with `ecoshare up`, "
            "or set ECOSHARE_BOOTSTRAP_SERVERS and ECOSHARE_SCHEMA_REGISTRY_URL"
        )
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise EcoshareError(f"{path} is unreadable: {exc}") from exc
