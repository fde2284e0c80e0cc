"""Webhooks: a subscriber's governed deliveries POSTed to its endpoint, signed."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.models import (
    Deleted,
    WebhookCreate,
    WebhookCreated,
    WebhookStateView,
    WebhookView,
)
from ecoshare.api.routes import api_context
from ecoshare.domain.partners import Role
from ecoshare.webhooks import WebhookRecord, webhook_secret
from ecoshare.webhooks.targets import WebhookTargetRefusedError, parse_target, system_resolver

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookIdPath = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{16}$")]
CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]


_SUSPENDED = WebhookStateView(
    status="suspended",
    delivered=0,
    failed_attempts=0,
    consecutive_failures=0,
    dead_lettered=0,
    last_error=None,
    last_attempt_at=None,
    last_delivered_at=None,
)


def webhook_view(context: ApiContext, record: WebhookRecord) -> WebhookView:
    state = context.webhooks.state(record.webhook_id)
    if not context.webhook_active(record):
        shown: WebhookStateView | None = _SUSPENDED
    else:
        shown = None if state is None else WebhookStateView.model_validate(state.to_json())
    return WebhookView(
        webhook_id=record.webhook_id,
        subscriber=record.subscriber,
        event_type=record.event_type,
        url=record.url,
        created_at=record.created_at,
        state=shown,
    )


def _check_url(context: ApiContext, url: str) -> None:
    """400 unless the URL passes the target checks the dispatcher applies per attempt."""
    try:
        context.webhook_targets.check(parse_target(url), system_resolver)
    except WebhookTargetRefusedError as exc:
        raise ApiError(
            400,
            f"webhooks may not target this URL: {exc.message}",
            code="webhook_target_refused",
            details=[{"field": "url", "message": exc.reason}],
        ) from exc


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Register a webhook for the caller's deliveries of one event type",
    description=(
        "Deliveries are POSTed as JSON with `X-Ecoshare-Signature: sha256=<hex>`, the "
        "HMAC-SHA256 of the body under the returned secret (shown once). Failed "
        "deliveries are retried with exponential backoff and dead-lettered after the "
        "platform's maximum of attempts. A new webhook starts from the beginning of "
        "the delivery topic. The URL must be https to a public address (the operator "
        "may allow exceptions); redirects are not followed. Revoking the key that "
        "registered a webhook, or disabling its subscriber, suspends it."
    ),
)
def create_webhook(body: WebhookCreate, caller: CallerDep, context: ContextDep) -> WebhookCreated:
    subscriber = body.subscriber or caller.partner_id
    if subscriber is None:
        raise ApiError(
            400,
            "the operator must name the subscriber",
            details=[{"field": "subscriber", "message": "is required"}],
        )
    caller.require(subscriber)
    if body.event_type not in context.catalog.event_types:
        raise ApiError(
            400,
            f"unknown event type {body.event_type!r}",
            details=[{"field": "event_type", "message": "not in the catalog"}],
        )
    partner = context.partner(subscriber)
    if partner is None:
        raise ApiError(404, f"no partner {subscriber!r}")
    if Role.SUBSCRIBER not in partner.roles:
        raise ApiError(400, f"partner {subscriber!r} holds no subscriber role")
    _check_url(context, body.url)
    record = WebhookRecord(
        webhook_id=f"wh_{secrets.token_hex(8)}",
        subscriber=subscriber,
        event_type=body.event_type,
        url=body.url,
        created_at=datetime.now(UTC),
        secret_nonce=secrets.token_hex(16),
        created_by_key=caller.key_id,
    )
    context.records.write("webhook", record.webhook_id, record)
    view = webhook_view(context, record)
    return WebhookCreated(
        **view.model_dump(), secret=webhook_secret(context.config.signing_secret, record)
    )


@router.get("", response_model=list[WebhookView], summary="Webhooks with their delivery state")
def list_webhooks(
    caller: CallerDep,
    context: ContextDep,
    subscriber: Annotated[str | None, Query(max_length=63)] = None,
) -> list[WebhookView]:
    if subscriber is not None:
        caller.require(subscriber)
    records = sorted(context.webhook_records().values(), key=lambda item: item.created_at)
    return [
        webhook_view(context, record)
        for record in records
        if caller.may_act_for(record.subscriber)
        and (subscriber is None or record.subscriber == subscriber)
    ]


def _owned(context: ApiContext, caller: Caller, webhook_id: str) -> WebhookRecord:
    record = context.webhook_records().get(webhook_id)
    if record is None:
        raise ApiError(404, f"no webhook {webhook_id!r}")
    caller.require(record.subscriber)
    return record


@router.get("/{webhook_id}", response_model=WebhookView, summary="One webhook and its state")
def get_webhook(webhook_id: WebhookIdPath, caller: CallerDep, context: ContextDep) -> WebhookView:
    return webhook_view(context, _owned(context, caller, webhook_id))


@router.delete("/{webhook_id}", response_model=Deleted, summary="Remove a webhook")
def delete_webhook(webhook_id: WebhookIdPath, caller: CallerDep, context: ContextDep) -> Deleted:
    _owned(context, caller, webhook_id)
    context.records.write("webhook", webhook_id, None)
    return Deleted(deleted=webhook_id)
