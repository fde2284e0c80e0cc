"""In-memory fakes of the ports of :mod:`ecoshare.application`, for its unit tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ecoshare.application.ports import RecordKind
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.credentials import ApiKeyRecord
from ecoshare.domain.partners import Partner

START = datetime(2026, 3, 16, 8, 30, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class InMemoryPlatform:
    """Both ports at once: the writer's records are what the state reads next, as on
    the API (whose writes are visible before a request answers)."""

    records: dict[RecordKind, dict[str, BaseModel]] = field(
        default_factory=lambda: {"partner": {}, "agreement": {}, "consent": {}, "api_key": {}}
    )
    writes: list[tuple[RecordKind, str, BaseModel | None]] = field(default_factory=list)

    def write(self, kind: RecordKind, key: str, value: BaseModel | None) -> None:
        self.writes.append((kind, key, value))
        if value is None:
            self.records[kind].pop(key, None)
        else:
            self.records[kind][key] = value

    def seed(self, *models: BaseModel) -> InMemoryPlatform:
        """Put records in place without counting them as writes."""
        for model in models:
            if isinstance(model, Partner):
                self.records["partner"][model.partner_id] = model
            elif isinstance(model, Agreement):
                self.records["agreement"][model.agreement_id] = model
            elif isinstance(model, ConsentRecord):
                self.records["consent"][model.consent_id] = model
            elif isinstance(model, ApiKeyRecord):
                self.records["api_key"][model.key_id] = model
        return self

    def partners(self) -> dict[str, Partner]:
        return dict(self.records["partner"])  # type: ignore[arg-type]

    def agreements(self) -> dict[str, Agreement]:
        return dict(self.records["agreement"])  # type: ignore[arg-type]

    def consents(self) -> dict[str, ConsentRecord]:
        return dict(self.records["consent"])  # type: ignore[arg-type]

    def api_keys(self) -> dict[str, ApiKeyRecord]:
        return dict(self.records["api_key"])  # type: ignore[arg-type]


def partner(partner_id: str, *roles: str, enabled: bool = True) -> Partner:
    return Partner.model_validate(
        {
            "partner_id": partner_id,
            "name": partner_id.title(),
            "roles": list(roles or ("publisher", "subscriber")),
            "enabled": enabled,
        }
    )


def agreement(agreement_id: str, version: int = 1, **changes: Any) -> Agreement:
    return Agreement.model_validate(
        {
            "agreement_id": agreement_id,
            "version": version,
            "publishers": ["shop"],
            "subscriber": "maps",
            "event_types": ["StoreStatusChanged"],
            "purpose": "store opening hours on a map",
            "valid_from": "2026-01-01T00:00:00Z",
            "fields": {"status": "deliver"},
            **changes,
        }
    )


@dataclass
class FakeProducer:
    """A producer that encodes with ``encode_event`` and keeps what it produced."""

    partner_id: str
    encode_event: Callable[[Mapping[str, Any], str], tuple[bytes, bytes]]
    fail_flush: Exception | None = None
    produced: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    flushed: list[float] = field(default_factory=list)

    def encode(
        self, event: Mapping[str, Any], event_type: str | None = None
    ) -> tuple[str, bytes, bytes]:
        assert event_type is not None
        key, value = self.encode_event(event, event_type)
        return event_type, key, value

    def produce_encoded(
        self,
        event_type: str,
        key: bytes,
        value: bytes,
        on_written: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.produced.append((event_type, key, value))
        if on_written is not None:
            on_written(f"ingress.{event_type}", 0, len(self.produced) - 1)

    def flush(self, timeout_seconds: float = 30.0) -> None:
        self.flushed.append(timeout_seconds)
        if self.fail_flush is not None:
            raise self.fail_flush
