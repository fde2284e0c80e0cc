"""Subscribing over HTTP: a subscriber's governed deliveries as Server-Sent Events.

Each delivery is one ``delivery`` event whose data is the JSON of
:func:`ecoshare.api.event_json.delivery_to_json`. Its ``id`` lists the next offset of
every partition read so far (``0:17,1:4``): a client that reconnects with that id in
``Last-Event-ID`` resumes exactly after the last delivery it saw. The stream reads the
topic with ``assign()``, so it joins no consumer group and commits nothing; it waits
for the delivery topic to appear when nothing was governed for the subscriber yet.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import StreamingResponse

from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.delivery_reader import DeliveryReader
from ecoshare.api.errors import ApiError
from ecoshare.api.routes import api_context
from ecoshare.domain.partners import PARTNER_ID_PATTERN

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])

CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]
_EVENT_ID = re.compile(r"^\d{1,6}:\d{1,19}(,\d{1,6}:\d{1,19})*$")


def parse_last_event_id(value: str | None) -> dict[int, int]:
    """Next offset per partition from a ``Last-Event-ID`` like ``0:17,1:4``."""
    if not value:
        return {}
    if _EVENT_ID.match(value.strip()) is None:
        raise ApiError(
            400,
            "Last-Event-ID must look like '0:17,1:4' (partition:next offset, ...)",
            details=[{"field": "header:last-event-id", "message": "malformed"}],
        )
    positions: dict[int, int] = {}
    for part in value.strip().split(","):
        partition, offset = part.split(":")
        positions[int(partition)] = int(offset)
    return positions


def format_event_id(positions: dict[int, int]) -> str:
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(positions.items()))


async def _stream(
    context: ApiContext,
    reader: DeliveryReader,
    positions: dict[int, int],
    start: int,
    max_events: int | None,
) -> AsyncIterator[str]:
    keepalive = context.config.limits.sse_keepalive_seconds
    sent = 0
    assigned = False
    last_write = time.monotonic()
    try:
        yield "retry: 2000\n: connected\n\n"
        while not context.stopping.is_set():
            if not assigned:
                assigned = await asyncio.to_thread(reader.assign, positions, start)
                if not assigned:
                    await asyncio.sleep(1.0)
            else:
                wanted = 100 if max_events is None else min(100, max_events - sent)
                for partition, offset, payload in await asyncio.to_thread(reader.read, wanted):
                    positions[partition] = offset + 1
                    data = json.dumps(payload, separators=(",", ":"))
                    sent += 1
                    last_write = time.monotonic()
                    yield f"id: {format_event_id(positions)}\nevent: delivery\ndata: {data}\n\n"
                    if max_events is not None and sent >= max_events:
                        return
            if time.monotonic() - last_write >= keepalive:
                last_write = time.monotonic()
                yield ": keepalive\n\n"
    finally:
        # Not awaited: a cancelled stream (the client left) cannot await any more.
        threading.Thread(target=reader.close, name="sse-close", daemon=True).start()


@router.get(
    "/{event_type}/stream",
    summary="The caller's governed deliveries of one event type, as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An SSE stream"}},
)
async def stream_deliveries(
    event_type: Annotated[str, Path(min_length=1, max_length=100)],
    caller: CallerDep,
    context: ContextDep,
    subscriber: Annotated[
        str | None, Query(pattern=PARTNER_ID_PATTERN, description="Operator only")
    ] = None,
    start: Annotated[
        Literal["earliest", "latest"],
        Query(alias="from", description="Where to start without Last-Event-ID"),
    ] = "earliest",
    max_events: Annotated[
        int | None, Query(alias="max", ge=1, le=1_000_000, description="End after N deliveries")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=4000)] = None,
) -> StreamingResponse:
    subscriber_id = subscriber or caller.partner_id
    if subscriber_id is None:
        raise ApiError(
            400,
            "the operator key names the subscriber with ?subscriber=",
            details=[{"field": "query:subscriber", "message": "is required"}],
        )
    caller.require(subscriber_id)
    if event_type not in context.catalog.event_types:
        raise ApiError(404, f"unknown event type {event_type!r}")
    positions = parse_last_event_id(last_event_id)
    reader = DeliveryReader(
        context.config.bootstrap_servers,
        context.decoder,
        context.names.delivery(subscriber_id, event_type),
    )
    return StreamingResponse(
        _stream(
            context,
            reader,
            positions,
            OFFSET_BEGINNING if start == "earliest" else OFFSET_END,
            max_events,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
