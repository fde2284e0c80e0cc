"""Audit look-up, ecosystem health, and the service's own health and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError, ErrorBody
from ecoshare.api.models import AuditDecisions, ServiceHealth
from ecoshare.api.routes import api_context

router = APIRouter(prefix="/v1", tags=["operations"])
service_router = APIRouter(tags=["service"])

CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]


@router.get(
    "/audit/{event_id}",
    response_model=AuditDecisions,
    summary="Every decision taken on an event",
    description=(
        "The operator sees every decision. A publisher sees every decision on its own "
        "events (who received them, who did not and why); a subscriber sees its own."
    ),
)
def audit_event(
    event_id: Annotated[str, Path(min_length=1, max_length=200)],
    caller: CallerDep,
    context: ContextDep,
) -> AuditDecisions:
    decisions = context.audit.decisions(event_id)
    if not decisions:
        raise ApiError(404, f"no decision recorded for event {event_id!r}")
    if not caller.operator:
        partner = caller.partner_id
        decisions = [
            item
            for item in decisions
            if item.get("publisher_id") == partner or item.get("subscriber_id") == partner
        ]
        if not decisions:
            raise ApiError(403, f"{caller.name} is neither publisher nor subscriber of this event")
    return AuditDecisions(event_id=event_id, decisions=decisions)


@router.get(
    "/health/ecosystem",
    response_model=dict[str, Any],
    summary="Ecosystem health report (operator)",
    responses={503: {"model": ErrorBody, "description": "The health monitor is not available"}},
)
async def ecosystem_health(caller: CallerDep, context: ContextDep) -> dict[str, Any]:
    caller.require_operator()
    report = await run_in_threadpool(context.health.report)
    if report is None:
        raise ApiError(503, context.health.unavailable_reason)
    return report


@service_router.get("/healthz", response_model=ServiceHealth, summary="Liveness of the API")
def healthz(context: ContextDep) -> ServiceHealth:
    failure = context.follower.failure
    return ServiceHealth(
        status="ok" if failure is None else "degraded",
        follower="ok" if failure is None else failure,
        audit_index="ok",
    )


@service_router.get("/metrics", include_in_schema=False)
def metrics(caller: CallerDep, context: ContextDep) -> Response:
    # Names every partner with its volumes: the operator's, not the public's.
    caller.require_operator()
    return Response(generate_latest(context.registry), media_type=CONTENT_TYPE_LATEST)
