"""Data-sharing agreements: visible to the operator and to both parties of each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.models import Deleted
from ecoshare.api.routes import api_context
from ecoshare.application import governance
from ecoshare.application.errors import (
    AgreementDoesNotFitError,
    AgreementVersionError,
    UnknownAgreementError,
)
from ecoshare.domain.agreements import Agreement

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

AgreementIdPath = Annotated[str, Path(min_length=1, max_length=200)]
CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]


def _party(caller: Caller, agreement: Agreement) -> bool:
    if caller.operator:
        return True
    partner = caller.partner_id or ""
    return agreement.subscriber == partner or agreement.names_publisher(partner)


@router.get(
    "",
    response_model=list[Agreement],
    summary="Agreements: all for the operator, a partner's own for a partner key",
)
def list_agreements(caller: CallerDep, context: ContextDep) -> list[Agreement]:
    agreements = sorted(context.agreements().values(), key=lambda item: item.agreement_id)
    return [agreement for agreement in agreements if _party(caller, agreement)]


@router.get("/{agreement_id}", response_model=Agreement, summary="One agreement")
def get_agreement(
    agreement_id: AgreementIdPath, caller: CallerDep, context: ContextDep
) -> Agreement:
    agreement = context.agreements().get(agreement_id)
    if agreement is None:
        if not caller.operator:
            # A partner learns nothing about agreements it is no party to.
            raise ApiError(404, f"no agreement {agreement_id!r} of {caller.name}")
        raise ApiError(404, f"no agreement {agreement_id!r}")
    if not _party(caller, agreement):
        raise ApiError(403, f"{caller.name} is no party to agreement {agreement_id!r}")
    return agreement


@router.put(
    "/{agreement_id}",
    response_model=Agreement,
    summary="Create or update an agreement (operator); changed content needs a higher version",
    responses={409: {"description": "Version not raised, or lower than the applied one"}},
)
def put_agreement(
    agreement_id: AgreementIdPath, body: Agreement, caller: CallerDep, context: ContextDep
) -> Agreement:
    caller.require_operator()
    if body.agreement_id != agreement_id:
        raise ApiError(
            400,
            "the body's agreement_id differs from the path",
            details=[{"field": "agreement_id", "message": "must equal the path"}],
        )
    try:
        return governance.save_agreement(
            body, context, context.records, context.catalog.event_schemas()
        )
    except AgreementDoesNotFitError as exc:
        raise ApiError(
            400,
            "the agreement does not fit the platform",
            details=[{"field": "agreement", "message": item} for item in exc.problems],
        ) from exc
    except AgreementVersionError as exc:
        raise ApiError(409, str(exc)) from exc


@router.delete("/{agreement_id}", response_model=Deleted, summary="End an agreement (operator)")
def delete_agreement(
    agreement_id: AgreementIdPath, caller: CallerDep, context: ContextDep
) -> Deleted:
    caller.require_operator()
    try:
        governance.end_agreement(agreement_id, context, context.records)
    except UnknownAgreementError as exc:
        raise ApiError(404, str(exc)) from exc
    return Deleted(deleted=agreement_id)
