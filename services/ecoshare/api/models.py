"""Request and response bodies of the HTTP API (the domain models are used as they are)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import GranteeRef
from ecoshare.domain.partners import Partner, PartnerId, Role

NonEmpty = Annotated[str, Field(min_length=1, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceHealth(BaseModel):
    status: str
    follower: str
    audit_index: str


class PartnerCreate(Strict):
    partner_id: PartnerId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    roles: Annotated[list[Role], Field(min_length=1)]
    contact_email: Annotated[str, Field(max_length=320)] | None = None


class ApiKeyCreate(Strict):
    label: Annotated[str, Field(max_length=200)] | None = None


class ApiKeyView(BaseModel):
    key_id: str
    partner_id: str
    created_at: datetime
    revoked_at: datetime | None = None
    label: str | None = None


class ApiKeyIssued(ApiKeyView):
    api_key: str = Field(description="The key itself. Shown once: it is stored only hashed.")


class PartnerCreated(BaseModel):
    partner: Partner
    api_key: ApiKeyIssued
    signing_key: str = Field(
        description="Hex signing key for publishing with the Kafka SDK. Shown once."
    )


class PartnerAgreements(BaseModel):
    partner_id: str
    as_publisher: list[Agreement]
    as_subscriber: list[Agreement]


class AgreementSummary(BaseModel):
    agreement_id: str
    version: int
    subscriber: str
    event_types: list[str]
    purpose: str
    in_force: bool
    fields_granted: list[str]
    consent_purpose: str | None


class RecipientFlow(BaseModel):
    subscriber: str
    event_type: str
    delivered: int
    withheld: dict[str, int]
    withheld_total: int
    quarantined: int
    fields_delivered: list[str]
    fields_transformed: dict[str, str]
    agreements: list[str]
    deliveries_without_personal_fields: int
    last_delivered_ms: int | None
    last_decided_ms: int | None


class Transparency(BaseModel):
    """Who receives a publisher's data, under which agreements, and how much."""

    partner_id: str
    events_published: dict[str, int]
    recipients: list[RecipientFlow]
    agreements: list[AgreementSummary]


class SubscriberFlow(BaseModel):
    publisher: str
    event_type: str
    delivered: int
    withheld: dict[str, int]
    withheld_total: int
    quarantined: int
    fields_delivered: list[str]
    agreements: list[str]
    last_delivered_ms: int | None


class DeliveryStatistics(BaseModel):
    partner_id: str
    delivered_total: int
    withheld_total: int
    flows: list[SubscriberFlow]
    webhooks: list[WebhookView]


class ConsentGrant(Strict):
    consent_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    subject: NonEmpty
    controller: PartnerId | None = Field(
        default=None, description="The publishing partner; defaults to the caller."
    )
    grantee: GranteeRef
    purpose: NonEmpty
    scope: Annotated[list[NonEmpty], Field(min_length=1, max_length=100)]
    given_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None


class AuditDecisions(BaseModel):
    event_id: str
    decisions: list[dict[str, Any]]


class PublishAccepted(BaseModel):
    accepted: int
    event_ids: list[str]
    topic: str


class WebhookCreate(Strict):
    url: Annotated[str, Field(min_length=8, max_length=2000, pattern=r"^https?://")]
    event_type: NonEmpty
    subscriber: PartnerId | None = Field(
        default=None, description="The subscribing partner; defaults to the caller."
    )


class WebhookStateView(BaseModel):
    status: str = Field(
        description="starting, waiting, delivering, retrying, stopped, failed, or suspended "
        "(the key that registered it was revoked, or the subscriber is disabled)"
    )
    delivered: int
    failed_attempts: int
    consecutive_failures: int
    dead_lettered: int
    last_error: str | None = Field(
        description="The class of the last failure: delivery_failed (the receiver did not "
        "answer 2xx in time), target_refused (the URL no longer passes the target checks) "
        "or delivery_unavailable; never what the receiver answered"
    )
    last_attempt_at: datetime | None
    last_delivered_at: datetime | None


class WebhookView(BaseModel):
    webhook_id: str
    subscriber: str
    event_type: str
    url: str
    created_at: datetime
    state: WebhookStateView | None


class WebhookCreated(WebhookView):
    secret: str = Field(
        description="HMAC-SHA256 key of the X-Ecoshare-Signature header. Shown once."
    )


class Deleted(BaseModel):
    deleted: str


DeliveryStatistics.model_rebuild()
