"""The AsyncAPI document of the ecosystem: the whole of it, or one partner's view."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from ecoshare import __version__
from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.routes import api_context
from ecoshare.catalog.asyncapi import asyncapi_document
from ecoshare.domain.partners import PARTNER_ID_PATTERN

router = APIRouter(tags=["catalog"])

CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]


def _document(context: ApiContext, partner_id: str | None) -> dict[str, Any]:
    partner = None
    if partner_id is not None:
        partner = context.partner(partner_id)
        if partner is None:
            raise ApiError(404, f"no partner {partner_id!r}")
    return asyncapi_document(
        context.catalog,
        context.agreements().values(),
        context.names,
        version=__version__,
        bootstrap_servers=context.config.bootstrap_servers,
        partner=partner,
    )


@router.get(
    "/asyncapi.json",
    response_model=dict[str, Any],
    summary="AsyncAPI 3.0 document of the event catalog and the agreements",
    description=(
        "Ingress channels per event type with the catalog's Avro schema, and per "
        "subscriber its delivery channels with the projected schema it receives. The "
        "operator key gets the whole ecosystem; a partner key gets that partner's view "
        "(the ingress channels if it publishes, its own delivery channels)."
    ),
)
def asyncapi(caller: CallerDep, context: ContextDep) -> dict[str, Any]:
    return _document(context, None if caller.operator else caller.partner_id)


@router.get(
    "/v1/partners/{partner_id}/asyncapi.json",
    response_model=dict[str, Any],
    summary="One partner's AsyncAPI view: what it may publish and what it receives",
)
def partner_asyncapi(
    partner_id: Annotated[str, Path(pattern=PARTNER_ID_PATTERN)],
    caller: CallerDep,
    context: ContextDep,
) -> dict[str, Any]:
    caller.require(partner_id)
    return _document(context, partner_id)
