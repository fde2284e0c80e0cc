"""Consent of data subjects, granted and withdrawn by the partner that controls their data.

A partner key acts as the controller: it sees, grants and withdraws the consents of
its own data subjects only. The operator acts for any controller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.models import ConsentGrant
from ecoshare.api.routes import api_context
from ecoshare.application import consent as consent_cases
from ecoshare.application.consent import NewConsent
from ecoshare.application.errors import (
    ConsentOfAnotherControllerError,
    InvalidConsentError,
    UnknownConsentError,
    UnknownControllerError,
)
from ecoshare.domain.consent import ConsentRecord

router = APIRouter(prefix="/v1/consents", tags=["consents"])

ConsentIdPath = Annotated[str, Path(min_length=1, max_length=200)]
CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]


@router.get("", response_model=list[ConsentRecord], summary="Consents, by subject or controller")
def list_consents(
    caller: CallerDep,
    context: ContextDep,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    controller: Annotated[str | None, Query(max_length=63)] = None,
) -> list[ConsentRecord]:
    if controller is not None:
        caller.require(controller)
    consents = sorted(context.consents().values(), key=lambda item: item.consent_id)
    return [
        consent
        for consent in consents
        if caller.may_act_for(consent.controller)
        and (subject is None or consent.subject == subject)
        and (controller is None or consent.controller == controller)
    ]


@router.post(
    "",
    response_model=ConsentRecord,
    status_code=status.HTTP_201_CREATED,
    summary="Record a data subject's consent (the controller is the caller's partner)",
    responses={409: {"description": "The consent id belongs to another controller"}},
)
def grant_consent(body: ConsentGrant, caller: CallerDep, context: ContextDep) -> ConsentRecord:
    controller = body.controller or caller.partner_id
    if controller is None:
        raise ApiError(
            400,
            "the operator must name the controller",
            details=[{"field": "controller", "message": "is required"}],
        )
    caller.require(controller)
    grant = NewConsent(
        subject=body.subject,
        controller=controller,
        grantee=body.grantee,
        purpose=body.purpose,
        scope=body.scope,
        expires_at=body.expires_at,
        given_at=body.given_at,
        consent_id=body.consent_id,
    )
    try:
        return consent_cases.grant_consent(grant, context, context.records)
    except UnknownControllerError as exc:
        raise ApiError(
            400,
            f"controller {exc.controller!r} is not a partner",
            details=[{"field": "controller", "message": "unknown partner"}],
        ) from exc
    except ConsentOfAnotherControllerError as exc:
        raise ApiError(409, str(exc)) from exc
    except InvalidConsentError as exc:
        raise ApiError(
            400,
            "the consent is not valid",
            details=[
                {"field": problem.field or "consent", "message": problem.message}
                for problem in exc.problems
            ],
        ) from exc


def _controlled(context: ApiContext, caller: Caller, consent_id: str) -> ConsentRecord:
    consent = context.consents().get(consent_id)
    if consent is None:
        raise ApiError(404, f"no consent {consent_id!r}")
    caller.require(consent.controller)
    return consent


@router.get("/{consent_id}", response_model=ConsentRecord, summary="One consent")
def get_consent(consent_id: ConsentIdPath, caller: CallerDep, context: ContextDep) -> ConsentRecord:
    return _controlled(context, caller, consent_id)


@router.post(
    "/{consent_id}/withdraw",
    response_model=ConsentRecord,
    summary="Withdraw a consent; enforced from the next governed event on",
)
def withdraw_consent(
    consent_id: ConsentIdPath, caller: CallerDep, context: ContextDep
) -> ConsentRecord:
    try:
        return consent_cases.withdraw_consent(
            consent_id,
            context,
            context.records,
            authorize=lambda record: caller.require(record.controller),
        )
    except UnknownConsentError as exc:
        raise ApiError(404, str(exc)) from exc
