"""Publishing over HTTP: JSON events, validated against the Avro schema, signed, produced.

A request holds one event (a JSON object) or a batch (a JSON array). The whole request
is validated before anything is produced: one bad event refuses the batch with 400 and
every offending field path (``[3].latitude``), and nothing of it is published. Accepted
events are produced to the ingress topic under the caller's partner identity, signed
with the key the platform derives for that partner, exactly as the Kafka SDK would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.models import PublishAccepted
from ecoshare.api.routes import api_context
from ecoshare.codec.event_json import FieldProblem
from ecoshare.domain.partners import PARTNER_ID_PATTERN, Partner, Role
from ecoshare.sdk import PublishError
from ecoshare.sdk.json_events import encode_json_events

router = APIRouter(prefix="/v1/events", tags=["events"])

CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]

_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "object", "description": "One event"},
                        {
                            "type": "array",
                            "items": {"type": "object"},
                            "minItems": 1,
                            "description": "A batch of events",
                        },
                    ]
                }
            }
        },
    }
}


def encode_events(
    context: ApiContext, partner: Partner, event_type: str, events: list[Any], batch: bool
) -> tuple[list[tuple[bytes, bytes]], list[str], list[FieldProblem]]:
    """Every event framed and keyed, or the problems of all of them."""
    return encode_json_events(
        context.publisher(partner),
        context.catalog.event_schema(event_type),
        event_type,
        partner.partner_id,
        [(f"[{index}]" if batch else "", event) for index, event in enumerate(events)],
        datetime.now(UTC),
    )


@router.post(
    "/{event_type}",
    response_model=PublishAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish one event or a batch as the caller's partner",
    description=(
        "Timestamps may be ISO 8601 text with a time zone or epoch milliseconds. "
        "`event_id`, `publisher_id` and `published_at` are filled in when left out. "
        "The operator key publishes on behalf of the partner named by `publisher`."
    ),
    openapi_extra=_REQUEST_BODY,
    responses={
        400: {"description": "An event does not fit its schema or a format the catalog documents"},
        413: {"description": "Too many events, or an event larger than the platform accepts"},
        503: {"description": "The broker did not acknowledge the events"},
    },
)
async def publish_events(
    event_type: Annotated[str, Path(min_length=1, max_length=100)],
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    publisher: Annotated[
        str | None, Query(pattern=PARTNER_ID_PATTERN, description="Operator only")
    ] = None,
) -> PublishAccepted:
    if event_type not in context.catalog.event_types:
        raise ApiError(
            404,
            f"unknown event type {event_type!r}; known: {', '.join(context.catalog.event_types)}",
        )
    publisher_id = publisher or caller.partner_id
    if publisher_id is None:
        raise ApiError(
            400,
            "the operator key publishes for a partner named by ?publisher=",
            details=[{"field": "query:publisher", "message": "is required"}],
        )
    caller.require(publisher_id)
    partner = context.partner(publisher_id)
    if partner is None or not partner.enabled or Role.PUBLISHER not in partner.roles:
        raise ApiError(
            403,
            f"partner {publisher_id!r} may not publish (unknown, disabled or "
            "without the publisher role)",
        )
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from exc
    batch = isinstance(body, list)
    events = body if batch else [body]
    if not events:
        raise ApiError(400, "the batch holds no event")
    limit = context.config.limits.max_batch_events
    if len(events) > limit:
        raise ApiError(413, f"{len(events)} events in one request; at most {limit}")
    encoded, event_ids, problems = await run_in_threadpool(
        encode_events, context, partner, event_type, events, batch
    )
    oversize = [problem for problem in problems if problem.too_large]
    if oversize:
        # The workers would quarantine these as oversize_event after a 202: refuse now.
        raise ApiError(
            413,
            f"{len(oversize)} event(s) larger than the platform accepts; nothing was published",
            code="event_too_large",
            details=[problem.to_json() for problem in oversize],
        )
    if problems:
        raise ApiError(
            400,
            f"{len(problems)} problem(s) in the {'batch' if batch else 'event'}; "
            "nothing was published",
            code="invalid_event",
            details=[problem.to_json() for problem in problems],
        )
    sdk_publisher = context.publisher(partner)

    def produce() -> None:
        for key, value in encoded:
            sdk_publisher.produce_encoded(event_type, key, value)
        sdk_publisher.flush(10)

    try:
        await run_in_threadpool(produce)
    except PublishError as exc:
        raise ApiError(503, f"the broker did not acknowledge the events: {exc}") from exc
    return PublishAccepted(
        accepted=len(event_ids), event_ids=event_ids, topic=context.names.ingress(event_type)
    )
