"""The platform's own secrets: master signing secret and operator key.

Set them with ECOSHARE_SIGNING_SECRET / ECOSHARE_OPERATOR_KEY in production. For the
embedded platform they are generated once and kept in the state directory (mode 0600),
so a restarted platform keeps accepting the partners' credentials.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from ecoshare.config.settings import Settings

_FILE = "secrets.json"


def _stored(state_dir: Path) -> dict[str, str]:
    path = state_dir / _FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    state_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "signing_secret": secrets.token_hex(32),
        "operator_key": "op_" + secrets.token_urlsafe(24),
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(values, handle)
    return values


def signing_secret(settings: Settings) -> bytes:
    """The master secret partner signing keys and subscriber hash keys derive from."""
    if settings.signing_secret:
        return settings.signing_secret.encode()
    return _stored(settings.state_dir)["signing_secret"].encode()


def operator_key(settings: Settings) -> str:
    if settings.operator_key:
        return settings.operator_key
    return _stored(settings.state_dir)["operator_key"]
