"""Webhook registrations and their signing secrets.

A registration lives on the compacted topic ``<prefix>ecoshare.webhooks`` (keyed by
webhook id). Its secret is never stored: it is derived from the platform's master
secret, the webhook id and a random nonce kept in the registration, so every API
instance can sign, and the secret is shown exactly once, when the webhook is created.

Each delivery is POSTed as JSON with ``X-Ecoshare-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact body bytes under the secret (the secret's text, UTF-8).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ecoshare.config.topics import TopicNames
from ecoshare.domain.partners import PartnerId
from ecoshare.domain.timestamps import UtcTimestamp

SIGNATURE_HEADER = "X-Ecoshare-Signature"
WEBHOOK_ID_HEADER = "X-Ecoshare-Webhook-Id"
DELIVERY_ID_HEADER = "X-Ecoshare-Delivery-Id"
ATTEMPT_HEADER = "X-Ecoshare-Attempt"
_SECRET_CONTEXT = b"ecoshare/webhook-secret/v1"


def webhooks_topic(names: TopicNames) -> str:
    """The compacted topic holding webhook registrations."""
    return f"{names.prefix}ecoshare.webhooks"


def dead_letter_topic(names: TopicNames) -> str:
    """Where deliveries go that a webhook refused too many times."""
    return f"{names.prefix}ecoshare.webhooks.dead-letter"


class WebhookRecord(BaseModel):
    """One registered webhook: deliveries of ``event_type`` to ``subscriber`` go to ``url``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook_id: Annotated[str, Field(pattern=r"^wh_[0-9a-f]{16}$")]
    subscriber: PartnerId
    event_type: Annotated[str, Field(min_length=1)]
    url: Annotated[str, Field(min_length=1)]
    created_at: UtcTimestamp
    secret_nonce: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    created_by_key: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")] | None = None
    """The partner key that registered it (None: the operator); revoking it stops the webhook."""


def webhook_secret(master_secret: bytes, record: WebhookRecord) -> str:
    """The webhook's signing secret (``whsec_`` and 64 hex digits)."""
    material = b"\x00".join(
        (_SECRET_CONTEXT, record.webhook_id.encode(), record.secret_nonce.encode())
    )
    return "whsec_" + hmac.new(master_secret, material, hashlib.sha256).hexdigest()


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
