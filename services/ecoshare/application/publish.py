"""Publishing JSON events as a partner: ``POST /v1/events/{type}`` and ``ecoshare publish``.

Every event of a request is converted and validated before any is produced: one bad
event refuses them all, with every problem named by its field path. Accepted events
are framed, signed as the partner and produced to the ingress topic, exactly as the
Kafka SDK would; the workers govern them asynchronously.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecoshare.application.errors import (
    PublisherNotAllowedError,
    UnknownEventTypeError,
    UseCaseError,
)
from ecoshare.application.ports import Clock, EventProducer, PlatformState, system_clock
from ecoshare.codec.event_json import FieldProblem
from ecoshare.domain.partners import Partner, Role
from ecoshare.sdk.json_events import encode_json_events

WrittenCallback = Callable[[str, int, int], None]
"""Called with (topic, partition, offset) once the broker acknowledged an event."""


class InvalidEventsError(UseCaseError):
    """Some events do not fit their schema (or are too large); none was produced."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was published")
        self.problems = tuple(problems)

    @property
    def oversize(self) -> list[FieldProblem]:
        """The events larger than the platform accepts (the workers would quarantine)."""
        return [problem for problem in self.problems if problem.too_large]


def check_event_type(event_type: str, known: Sequence[str]) -> None:
    if event_type not in known:
        raise UnknownEventTypeError(event_type, known)


def publishing_partner(partner_id: str, state: PlatformState) -> Partner:
    """The partner, when it exists, is enabled and holds the publisher role."""
    partner = state.partners().get(partner_id)
    if partner is None:
        raise PublisherNotAllowedError(partner_id, known=False)
    if not partner.enabled or Role.PUBLISHER not in partner.roles:
        raise PublisherNotAllowedError(partner_id, known=True)
    return partner


def publish_json_events(
    producer: EventProducer,
    event_schema: Mapping[str, Any],
    event_type: str,
    events: list[tuple[str, Any]],
    *,
    clock: Clock = system_clock,
    flush_timeout_seconds: float = 30.0,
    on_written: Callable[[str], WrittenCallback | None] | None = None,
) -> list[str]:
    """Encode, sign and produce ``events``; their event ids, in order.

    ``events`` pairs each JSON event with the prefix its problems are named under
    (``[3]``, ``line 4``). InvalidEventsError before anything is produced when any event
    is bad; PublishError when the broker does not acknowledge them within
    ``flush_timeout_seconds``. ``on_written(event_id)`` may give a callback that learns
    where that event was written.
    """
    encoded, event_ids, problems = encode_json_events(
        producer, event_schema, event_type, producer.partner_id, events, clock()
    )
    if problems:
        raise InvalidEventsError(problems)
    for (key, value), event_id in zip(encoded, event_ids, strict=True):
        callback = on_written(event_id) if on_written is not None else None
        producer.produce_encoded(event_type, key, value, callback)
    producer.flush(flush_timeout_seconds)
    return event_ids
