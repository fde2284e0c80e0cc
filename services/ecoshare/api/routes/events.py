"""Publishing over HTTP: JSON events, validated against the Avro schema, signed, produced.

A request holds one event (a JSON object) or a batch (a JSON array). The whole request
is validated before anything is produced: one bad event refuses the batch with 400 and
every offending field path (``[3].latitude``), and nothing of it is published. Accepted
events are produced to the ingress topic under the caller's partner identity, signed
with the key the platform derives for that partner, exactly as the Kafka SDK would.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.models import PublishAccepted
from ecoshare.api.routes import api_context
from ecoshare.application.errors import PublisherNotAllowedError, UnknownEventTypeError
from ecoshare.application.publish import (
    InvalidEventsError,
    check_event_type,
    publish_json_events,
    publishing_partner,
)
from ecoshare.domain.partners import PARTNER_ID_PATTERN
from ecoshare.sdk import PublishError

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
    try:
        check_event_type(event_type, context.catalog.event_types)
    except UnknownEventTypeError as exc:
        raise ApiError(404, str(exc)) from exc
    publisher_id = publisher or caller.partner_id
    if publisher_id is None:
        raise ApiError(
            400,
            "the operator key publishes for a partner named by ?publisher=",
            details=[{"field": "query:publisher", "message": "is required"}],
        )
    caller.require(publisher_id)
    try:
        partner = publishing_partner(publisher_id, context)
    except PublisherNotAllowedError as exc:
        raise ApiError(403, str(exc)) from exc
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

    def publish() -> list[str]:
        # Off the event loop: a partner's first publish opens its producer, and
        # encoding and acknowledgement take their time.
        return publish_json_events(
            context.publisher(partner),
            context.catalog.event_schema(event_type),
            event_type,
            [(f"[{index}]" if batch else "", event) for index, event in enumerate(events)],
            flush_timeout_seconds=10,
        )

    try:
        event_ids = await run_in_threadpool(publish)
    except InvalidEventsError as exc:
        oversize = exc.oversize
        if oversize:
            # The workers would quarantine these as oversize_event after a 202: refuse now.
            raise ApiError(
                413,
                f"{len(oversize)} event(s) larger than the platform accepts; nothing was published",
                code="event_too_large",
                details=[problem.to_json() for problem in oversize],
            ) from exc
        raise ApiError(
            400,
            f"{len(exc.problems)} problem(s) in the {'batch' if batch else 'event'}; "
            "nothing was published",
            code="invalid_event",
            details=[problem.to_json() for problem in exc.problems],
        ) from exc
    except PublishError as exc:
        raise ApiError(503, f"the broker did not acknowledge the events: {exc}") from exc
    return PublishAccepted(
        accepted=len(event_ids), event_ids=event_ids, topic=context.names.ingress(event_type)
    )
