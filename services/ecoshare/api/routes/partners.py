"""Partners, their API keys, and what each partner may see about its own data flows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.models import (
    AgreementSummary,
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyView,
    DeliveryStatistics,
    PartnerAgreements,
    PartnerCreate,
    PartnerCreated,
    RecipientFlow,
    SubscriberFlow,
    Transparency,
)
from ecoshare.api.routes import api_context
from ecoshare.api.routes.webhooks import webhook_view
from ecoshare.application import partners as partner_cases
from ecoshare.application.errors import (
    PartnerExistsError,
    UnknownApiKeyError,
    UnknownPartnerError,
)
from ecoshare.domain.partners import PARTNER_ID_PATTERN, Partner

router = APIRouter(prefix="/v1/partners", tags=["partners"])

PartnerIdPath = Annotated[str, Path(pattern=PARTNER_ID_PATTERN, max_length=63)]
KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]


def existing_partner(context: ApiContext, partner_id: str) -> Partner:
    try:
        return partner_cases.existing_partner(context, partner_id)
    except UnknownPartnerError as exc:
        raise ApiError(404, str(exc)) from exc


def _key_view(record: dict[str, object]) -> ApiKeyView:
    return ApiKeyView.model_validate(record)


@router.get("", response_model=list[Partner], summary="Every partner (operator)")
def list_partners(caller: CallerDep, context: ContextDep) -> list[Partner]:
    caller.require_operator()
    return sorted(context.partners().values(), key=lambda partner: partner.partner_id)


@router.post(
    "",
    response_model=PartnerCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Onboard a partner (operator); its first API key and signing key are shown once",
    responses={409: {"description": "The partner exists already"}},
)
def create_partner(body: PartnerCreate, caller: CallerDep, context: ContextDep) -> PartnerCreated:
    caller.require_operator()
    partner = Partner(
        partner_id=body.partner_id,
        name=body.name,
        roles=frozenset(body.roles),
        contact_email=body.contact_email,
    )
    try:
        registered = partner_cases.register_partner(
            partner, context, context.records, context.config.signing_secret
        )
    except PartnerExistsError as exc:
        raise ApiError(409, str(exc)) from exc
    issued = registered.api_key
    return PartnerCreated(
        partner=registered.partner,
        api_key=ApiKeyIssued(**issued.record.public_view(), api_key=issued.api_key),
        signing_key=registered.signing_key.hex(),
    )


@router.get("/{partner_id}", response_model=Partner, summary="One partner (operator or itself)")
def get_partner(partner_id: PartnerIdPath, caller: CallerDep, context: ContextDep) -> Partner:
    caller.require(partner_id)
    return existing_partner(context, partner_id)


def _set_enabled(context: ApiContext, partner_id: str, enabled: bool) -> Partner:
    try:
        return partner_cases.set_partner_enabled(partner_id, enabled, context, context.records)
    except UnknownPartnerError as exc:
        raise ApiError(404, str(exc)) from exc


@router.post(
    "/{partner_id}/disable",
    response_model=Partner,
    summary="Disable a partner (operator): it neither publishes nor receives any more",
)
def disable_partner(partner_id: PartnerIdPath, caller: CallerDep, context: ContextDep) -> Partner:
    caller.require_operator()
    return _set_enabled(context, partner_id, enabled=False)


@router.post("/{partner_id}/enable", response_model=Partner, summary="Enable a partner again")
def enable_partner(partner_id: PartnerIdPath, caller: CallerDep, context: ContextDep) -> Partner:
    caller.require_operator()
    return _set_enabled(context, partner_id, enabled=True)


@router.get(
    "/{partner_id}/keys",
    response_model=list[ApiKeyView],
    summary="The partner's API keys, without their secrets",
)
def list_keys(
    partner_id: PartnerIdPath, caller: CallerDep, context: ContextDep
) -> list[ApiKeyView]:
    caller.require(partner_id)
    existing_partner(context, partner_id)
    return [
        _key_view(record.public_view())
        for record in sorted(context.api_keys().values(), key=lambda item: item.created_at)
        if record.partner_id == partner_id
    ]


@router.post(
    "/{partner_id}/keys",
    response_model=ApiKeyIssued,
    status_code=status.HTTP_201_CREATED,
    summary="Issue another API key (shown once)",
)
def create_key(
    partner_id: PartnerIdPath, body: ApiKeyCreate, caller: CallerDep, context: ContextDep
) -> ApiKeyIssued:
    caller.require(partner_id)
    try:
        issued = partner_cases.issue_partner_key(partner_id, body.label, context, context.records)
    except UnknownPartnerError as exc:
        raise ApiError(404, str(exc)) from exc
    return ApiKeyIssued(**issued.record.public_view(), api_key=issued.api_key)


@router.delete(
    "/{partner_id}/keys/{key_id}", response_model=ApiKeyView, summary="Revoke an API key"
)
def revoke_key(
    partner_id: PartnerIdPath, key_id: KeyIdPath, caller: CallerDep, context: ContextDep
) -> ApiKeyView:
    caller.require(partner_id)
    try:
        record = partner_cases.revoke_api_key(
            key_id, context, context.records, partner_id=partner_id
        )
    except UnknownApiKeyError as exc:
        raise ApiError(404, str(exc)) from exc
    return _key_view(record.public_view())


@router.get(
    "/{partner_id}/agreements",
    response_model=PartnerAgreements,
    summary="The partner's agreements, as publisher and as subscriber",
)
def partner_agreements(
    partner_id: PartnerIdPath, caller: CallerDep, context: ContextDep
) -> PartnerAgreements:
    caller.require(partner_id)
    existing_partner(context, partner_id)
    agreements = sorted(context.agreements().values(), key=lambda item: item.agreement_id)
    return PartnerAgreements(
        partner_id=partner_id,
        as_publisher=[item for item in agreements if item.names_publisher(partner_id)],
        as_subscriber=[item for item in agreements if item.subscriber == partner_id],
    )


@router.get(
    "/{partner_id}/recipients",
    response_model=Transparency,
    summary="Transparency: who receives the partner's data, which fields, and how much",
)
def recipients(partner_id: PartnerIdPath, caller: CallerDep, context: ContextDep) -> Transparency:
    caller.require(partner_id)
    existing_partner(context, partner_id)
    context.audit.catch_up()
    now = datetime.now(UTC)
    flows = [
        RecipientFlow(subscriber=subscriber, event_type=event_type, **stats)
        for (publisher, subscriber, event_type), stats in sorted(context.audit.flows().items())
        if publisher == partner_id
    ]
    summaries = [
        AgreementSummary(
            agreement_id=agreement.agreement_id,
            version=agreement.version,
            subscriber=agreement.subscriber,
            event_types=sorted(agreement.event_types),
            purpose=agreement.purpose,
            in_force=agreement.is_in_force(now),
            fields_granted=sorted(agreement.granted_fields),
            consent_purpose=agreement.effective_consent_purpose,
        )
        for agreement in sorted(context.agreements().values(), key=lambda item: item.agreement_id)
        if agreement.names_publisher(partner_id)
    ]
    published = {
        event_type: count
        for (publisher, event_type), count in sorted(context.audit.published().items())
        if publisher == partner_id
    }
    return Transparency(
        partner_id=partner_id, events_published=published, recipients=flows, agreements=summaries
    )


@router.get(
    "/{partner_id}/deliveries",
    response_model=DeliveryStatistics,
    summary="Delivery statistics of a subscriber: delivered and withheld, per publisher",
)
def delivery_statistics(
    partner_id: PartnerIdPath, caller: CallerDep, context: ContextDep
) -> DeliveryStatistics:
    caller.require(partner_id)
    existing_partner(context, partner_id)
    context.audit.catch_up()
    flows = [
        SubscriberFlow(
            publisher=publisher,
            event_type=event_type,
            delivered=stats["delivered"],
            withheld=stats["withheld"],
            withheld_total=stats["withheld_total"],
            quarantined=stats["quarantined"],
            fields_delivered=stats["fields_delivered"],
            agreements=stats["agreements"],
            last_delivered_ms=stats["last_delivered_ms"],
        )
        for (publisher, subscriber, event_type), stats in sorted(context.audit.flows().items())
        if subscriber == partner_id
    ]
    webhooks = [
        webhook_view(context, record)
        for record in context.webhook_records().values()
        if record.subscriber == partner_id
    ]
    return DeliveryStatistics(
        partner_id=partner_id,
        delivered_total=sum(flow.delivered for flow in flows),
        withheld_total=sum(flow.withheld_total for flow in flows),
        flows=flows,
        webhooks=webhooks,
    )
