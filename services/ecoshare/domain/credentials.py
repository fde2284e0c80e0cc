"""Per-partner API keys: shown once when issued, stored only as salted scrypt hashes.

A key reads ``esk_<key id>_<secret>``. The key id is public (it names the key in
listings and revocations); the secret is 32 random bytes, URL-safe. The record kept on
the compacted topic ``<prefix>ecoshare.api-keys`` (keyed by key id) holds the partner,
a random salt and ``scrypt(secret, salt)``; revoking a key republishes its record with
``revoked_at`` set. Every API instance follows that topic, so a key works on all of
them and survives restarts, and nothing that could reproduce a key is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from ecoshare.domain.partners import PartnerId
from ecoshare.domain.timestamps import UtcTimestamp

KEY_PREFIX = "esk"
SCRYPT_ALGORITHM: Final = "scrypt-n16384-r8-p1"
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_ID_BYTES = 6


class ApiKeyRecord(BaseModel):
    """What the platform keeps of an API key: never the key itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")]
    partner_id: PartnerId
    algorithm: Literal["scrypt-n16384-r8-p1"] = SCRYPT_ALGORITHM
    salt: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_at: UtcTimestamp
    revoked_at: UtcTimestamp | None = None
    label: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def public_view(self) -> dict[str, object]:
        """The record without salt and hash, for listings."""
        return {
            "key_id": self.key_id,
            "partner_id": self.partner_id,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "label": self.label,
        }


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly issued key: ``api_key`` is the only copy of the secret there will be."""

    api_key: str
    record: ApiKeyRecord

    @property
    def key_id(self) -> str:
        return self.record.key_id


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )


def issue_key(partner_id: str, now: datetime, label: str | None = None) -> IssuedKey:
    """A new random key for ``partner_id`` and the record to store for it."""
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    record = ApiKeyRecord(
        key_id=key_id,
        partner_id=partner_id,
        salt=salt.hex(),
        hash=_scrypt(secret, salt).hex(),
        created_at=now,
        label=label,
    )
    return IssuedKey(f"{KEY_PREFIX}_{key_id}_{secret}", record)


def revoked(record: ApiKeyRecord, now: datetime | None = None) -> ApiKeyRecord:
    """The record with ``revoked_at`` set (unchanged when already revoked)."""
    if record.revoked_at is not None:
        return record
    return record.model_copy(update={"revoked_at": now or datetime.now(UTC)})


def key_id_of(presented: str) -> str | None:
    """The key id of a presented key, or None when it is not shaped like one."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[2]:
        return None
    key_id = parts[1]
    if len(key_id) != 2 * _KEY_ID_BYTES or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id


def key_matches(record: ApiKeyRecord, presented: str) -> bool:
    """True when ``presented`` is the key ``record`` was issued for (constant time).

    Costs one scrypt evaluation (tens of milliseconds, 16 MiB): callers cache a success.
    """
    if key_id_of(presented) != record.key_id:
        return False
    secret = presented.split("_", 2)[2]
    return hmac.compare_digest(_scrypt(secret, bytes.fromhex(record.salt)).hex(), record.hash)
