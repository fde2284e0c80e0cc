"""Granting and withdrawing the consent of data subjects (``/v1/consents``, ``ecoshare consent``).

Who may act for a controller is the entry point's question (an API key acts for its own
partner, the operator for any); these use cases hold the rules every caller shares.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import ValidationError

from ecoshare.application.errors import (
    ConsentOfAnotherControllerError,
    FieldError,
    InvalidConsentError,
    UnknownConsentError,
    UnknownControllerError,
)
from ecoshare.application.ports import Clock, ControlRecordWriter, PlatformState, system_clock
from ecoshare.domain.consent import ConsentRecord


@dataclass(frozen=True)
class NewConsent:
    """A consent to record; ``consent_id`` None draws a new UUID, ``given_at`` None is now."""

    subject: str
    controller: str
    grantee: str
    purpose: str
    scope: Iterable[str]
    expires_at: datetime | None = None
    given_at: datetime | None = None
    consent_id: str | None = None


def consent_record(grant: NewConsent, clock: Clock = system_clock) -> ConsentRecord:
    """The record ``grant`` describes; InvalidConsentError naming every bad field."""
    try:
        return ConsentRecord(
            consent_id=grant.consent_id or str(uuid.uuid4()),
            subject=grant.subject,
            controller=grant.controller,
            grantee=grant.grantee,
            purpose=grant.purpose,
            scope=frozenset(grant.scope),
            given_at=grant.given_at or clock(),
            expires_at=grant.expires_at,
        )
    except ValidationError as exc:
        raise InvalidConsentError(
            [
                FieldError(".".join(str(part) for part in error["loc"]), error["msg"])
                for error in exc.errors()
            ]
        ) from exc


def grant_consent(
    grant: NewConsent,
    state: PlatformState,
    writer: ControlRecordWriter,
    clock: Clock = system_clock,
) -> ConsentRecord:
    """Record a consent, effective from the next governed event on.

    The controller must be a partner, and a consent id already taken stays with its
    controller (re-granting one's own consent replaces it).
    """
    if grant.controller not in state.partners():
        raise UnknownControllerError(grant.controller)
    consent_id = grant.consent_id or str(uuid.uuid4())
    existing = state.consents().get(consent_id)
    if existing is not None and existing.controller != grant.controller:
        raise ConsentOfAnotherControllerError(consent_id)
    consent = consent_record(replace(grant, consent_id=consent_id), clock)
    writer.write("consent", consent.consent_id, consent)
    return consent


def withdraw_consent(
    consent_id: str,
    state: PlatformState,
    writer: ControlRecordWriter,
    clock: Clock = system_clock,
    authorize: Callable[[ConsentRecord], None] | None = None,
) -> ConsentRecord:
    """Withdraw a consent, enforced from the next governed event on.

    The withdrawal time is now, but never before the consent was given (a consent given
    "in the future" by a skewed clock is withdrawn as it starts). Withdrawing twice
    keeps the first withdrawal and writes nothing. ``authorize`` may refuse the caller
    once the consent (and so its controller) is known.
    """
    consent = state.consents().get(consent_id)
    if consent is None:
        raise UnknownConsentError(consent_id)
    if authorize is not None:
        authorize(consent)
    if consent.withdrawn_at is not None:
        return consent
    consent = consent.model_copy(update={"withdrawn_at": max(clock(), consent.given_at)})
    writer.write("consent", consent_id, consent)
    return consent
