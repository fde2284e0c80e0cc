"""Webhooks: governed deliveries pushed to a subscriber's HTTPS endpoint, signed."""

from ecoshare.webhooks.dispatcher import WebhookDispatcher, WebhookPolicy, WebhookState
from ecoshare.webhooks.registration import (
    SIGNATURE_HEADER,
    WebhookRecord,
    dead_letter_topic,
    sign_body,
    webhook_secret,
    webhooks_topic,
)

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookDispatcher",
    "WebhookPolicy",
    "WebhookRecord",
    "WebhookState",
    "dead_letter_topic",
    "sign_body",
    "webhook_secret",
    "webhooks_topic",
]
