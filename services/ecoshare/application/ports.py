"""What the use cases need from the outside world, as small protocols.

The API and the CLI each adapt their own Kafka plumbing to these at the edge; the unit
tests pass in-memory fakes. Records are addressed by kind, not topic: which topic holds
a kind is the adapter's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.credentials import ApiKeyRecord
from ecoshare.domain.partners import Partner

RecordKind = Literal["partner", "agreement", "consent", "api_key"]
"""The compacted records a use case writes: one topic per kind."""

Clock = Callable[[], datetime]
"""The current time, timezone-aware (UTC)."""


def system_clock() -> datetime:
    return datetime.now(UTC)


class ControlRecordWriter(Protocol):
    """Writes one acknowledged compacted record (None deletes the key).

    Returns once the broker has acknowledged it; an API writer also waits until its own
    state shows the record, so the next request reads what this one wrote.
    """

    def write(self, kind: RecordKind, key: str, value: BaseModel | None) -> None: ...


class PlatformState(Protocol):
    """The valid records of the control and credential topics as they stand now."""

    def partners(self) -> Mapping[str, Partner]: ...

    def agreements(self) -> Mapping[str, Agreement]: ...

    def consents(self) -> Mapping[str, ConsentRecord]: ...

    def api_keys(self) -> Mapping[str, ApiKeyRecord]: ...


class EventProducer(Protocol):
    """A partner's signing publisher: validates and frames events, then produces them."""

    partner_id: str

    def encode(
        self, event: Mapping[str, Any], event_type: str | None = None
    ) -> tuple[str, bytes, bytes]:
        """(event type, key, framed value); EventValidationError/EventTooLargeError."""
        ...

    def produce_encoded(
        self,
        event_type: str,
        key: bytes,
        value: bytes,
        on_written: Callable[[str, int, int], None] | None = None,
    ) -> None: ...

    def flush(self, timeout_seconds: float = 30.0) -> None:
        """Wait for every acknowledgement; PublishError otherwise."""
        ...
