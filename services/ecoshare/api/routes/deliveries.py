"""Subscribing over HTTP: a subscriber's governed deliveries as Server-Sent Events.

Each delivery is one ``delivery`` event whose data is the JSON of
:func:`ecoshare.codec.event_json.delivery_to_json`. Its ``id`` lists the next offset of
every partition read so far (``0:17,1:4``): a client that reconnects with that id in
``Last-Event-ID`` resumes exactly after the last delivery it saw. The stream reads the
topic with ``assign()``, so it joins no consumer group and commits nothing; it waits
for the delivery topic to appear when nothing was governed for the subscriber yet.

A stream lives no longer than the key that opened it: once the key is revoked or its
partner disabled (by this API, another instance or the CLI: all write the followed
compacted topics), the stream sends one ``revoked`` event and ends, within
:data:`REVOCATION_CHECK_SECONDS` plus the follower's lag.
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

from ecoshare.adapters.kafka.delivery_reader import DeliveryReader
from ecoshare.api.auth import Caller, current_caller
from ecoshare.api.context import ApiContext
from ecoshare.api.errors import ApiError
from ecoshare.api.routes import api_context
from ecoshare.domain.partners import PARTNER_ID_PATTERN

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])

CallerDep = Annotated[Caller, Depends(current_caller)]
ContextDep = Annotated[ApiContext, Depends(api_context)]
_EVENT_ID = re.compile(r"^\d{1,10}:\d{1,19}(,\d{1,10}:\d{1,19})*$")
_MAX_PARTITION = 2**31 - 1
_MAX_OFFSET = 2**63 - 1
REVOCATION_CHECK_SECONDS = 0.25
"""How often an open stream checks that its key still holds: the longest wait in its loop."""


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
        partition_text, offset_text = part.split(":")
        partition, offset = int(partition_text), int(offset_text)
        if partition > _MAX_PARTITION or offset > _MAX_OFFSET:
            # Kafka partitions are 32-bit and offsets 64-bit signed integers.
            raise ApiError(
                400,
                f"Last-Event-ID names partition {partition} offset {offset}: partitions "
                f"go up to {_MAX_PARTITION} and offsets up to {_MAX_OFFSET}",
                details=[{"field": "header:last-event-id", "message": "out of range"}],
            )
        positions[partition] = offset
    return positions


def format_event_id(positions: dict[int, int]) -> str:
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(positions.items()))


def _revoked_event(reason: str) -> str:
    data = json.dumps({"error": "unauthorized", "message": f"{reason}; the stream ends"})
    return f"event: revoked\ndata: {data}\n\n"


async def _stream(
    context: ApiContext,
    caller: Caller,
    reader: DeliveryReader,
    positions: dict[int, int],
    start: int,
    max_events: int | None,
) -> AsyncIterator[str]:
    keepalive = context.config.limits.sse_keepalive_seconds
    sent = 0
    assigned = False
    next_assign_at = 0.0
    last_write = time.monotonic()
    try:
        yield "retry: 2000\n: connected\n\n"
        while not context.stopping.is_set():
            revocation = context.auth.revocation_of(caller)
            if revocation is not None:
                yield _revoked_event(revocation)
                return
            if not assigned:
                if time.monotonic() >= next_assign_at:
                    # The topic appears with the first delivery: ask the broker once a second.
                    next_assign_at = time.monotonic() + 1.0
                    assigned = await asyncio.to_thread(reader.assign, positions, start)
                if not assigned:
                    await asyncio.sleep(REVOCATION_CHECK_SECONDS)
            else:
                wanted = 100 if max_events is None else min(100, max_events - sent)
                read = await asyncio.to_thread(reader.read, wanted, REVOCATION_CHECK_SECONDS)
                if read and context.auth.revocation_of(caller) is not None:
                    continue  # read while the key was revoked: not sent
                for partition, offset, payload in read:
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
            caller,
            reader,
            positions,
            OFFSET_BEGINNING if start == "earliest" else OFFSET_END,
            max_events,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
