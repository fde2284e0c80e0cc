"""JSON events published through the SDK's :class:`~ecoshare.sdk.Publisher`.

The HTTP API and the CLI accept events as JSON; this turns them into the framed records
the publisher sends, collecting every problem (with its field path) before anything is
published. The JSON to Avro conversion itself is :mod:`ecoshare.codec.event_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from ecoshare.codec.event_json import FieldProblem, fill_envelope, join_path, record_from_json
from ecoshare.sdk.errors import EventTooLargeError, EventValidationError


class EventEncoder(Protocol):
    """What encoding needs of a publisher (:class:`ecoshare.sdk.Publisher` is one)."""

    def encode(
        self, event: Mapping[str, Any], event_type: str | None = None
    ) -> tuple[str, bytes, bytes]: ...


def encode_json_events(
    publisher: EventEncoder,
    schema: Mapping[str, Any],
    event_type: str,
    publisher_id: str,
    events: list[tuple[str, Any]],
    now: datetime,
) -> tuple[list[tuple[bytes, bytes]], list[str], list[FieldProblem]]:
    """(key, framed value) and event id of every event, or the problems of all of them.

    ``events`` pairs each JSON event with the path prefix its problems are reported
    under (``[3]`` for the fourth event of a batch, ``""`` for a single one). Envelope
    fields are filled in by :func:`fill_envelope`; a ``publisher_id`` other than
    ``publisher_id`` is refused, since the platform would quarantine it.
    """
    encoded: list[tuple[bytes, bytes]] = []
    event_ids: list[str] = []
    problems: list[FieldProblem] = []
    for prefix, event in events:
        if not isinstance(event, dict):
            problems.append(FieldProblem(prefix or "(event)", "an event must be a JSON object"))
            continue
        filled = fill_envelope(event, publisher_id, now)
        if filled.get("publisher_id") != publisher_id:
            problems.append(
                FieldProblem(
                    join_path(prefix, "publisher_id"),
                    f"must be the publishing partner's id {publisher_id!r}",
                )
            )
            continue
        record, found = record_from_json(schema, filled, prefix)
        if record is None:
            problems.extend(found)
            continue
        try:
            _, key, value = publisher.encode(record, event_type)
        except EventTooLargeError as exc:
            problems.append(FieldProblem(prefix or "(event)", exc.message, too_large=True))
            continue
        except EventValidationError as exc:
            problems.append(FieldProblem(join_path(prefix, exc.field), exc.message))
            continue
        encoded.append((key, value))
        event_ids.append(str(record["event_id"]))
    return encoded, event_ids, problems
