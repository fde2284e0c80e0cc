"""JSON records on compacted topics, and the one rule that turns them into models.

Partners, agreements, consents (the control plane), API keys and webhooks each live in
one compacted topic. A record is

- key: the record's id as UTF-8;
- value: a JSON object as UTF-8. Deletion is the JSON value ``{"deleted": true}``,
  not a null tombstone: the embedded broker does not reliably deliver null values,
  and a marker value keeps every change an ordinary, ordered record. A null value
  written by another tool also counts as a deletion.

**The rule for invalid records: keep the last valid one.** A record that cannot be
decoded, or whose value the model refuses, leaves the key's previous valid record in
force; it is counted and logged, and reported until a later record of that key is
valid or deletes it. One bad write (a typo, a client on an older schema) must never
erase good state: dropping the key instead would, for a consent, stop deliveries the
subject agreed to, and for a partner, cut it off. The governance workers, the API, the
CLI and the health monitor all decode through :class:`ValidRecords`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ecoshare.adapters.kafka.errors import ControlRecordError
from ecoshare.adapters.kafka.reading import read_topics_to_end
from ecoshare.adapters.kafka.writer import AcknowledgedWriter, Written

__all__ = [
    "DELETION_MARKER",
    "CompactedState",
    "ControlRecordError",
    "JsonObject",
    "ValidRecords",
    "decode_key",
    "decode_value",
    "delete_record",
    "encode_key",
    "encode_value",
    "is_deletion",
    "put_record",
    "read_valid_records",
]

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
ModelT = TypeVar("ModelT", bound=BaseModel)

DELETION_MARKER: Mapping[str, Any] = MappingProxyType({"deleted": True})


# -- record format -----------------------------------------------------------------------


def encode_key(key: str) -> bytes:
    if not key:
        raise ControlRecordError("a control record needs a non-empty id as its key")
    return key.encode("utf-8")


def decode_key(raw: str | bytes | None) -> str:
    if not raw:
        raise ControlRecordError("control record without a key")
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ControlRecordError(f"control record key is not UTF-8: {raw!r}") from exc


def encode_value(value: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(dict(value), separators=(",", ":"), sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ControlRecordError(f"control record value is not JSON-serialisable: {exc}") from exc


def is_deletion(value: Mapping[str, Any]) -> bool:
    return value.get("deleted") is True


def decode_value(raw: str | bytes | None) -> JsonObject | None:
    """The record's JSON object, or None when the record deletes its key."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlRecordError(f"control record value is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ControlRecordError(
            f"control record value must be a JSON object, got {type(value).__name__}"
        )
    return None if is_deletion(value) else value


# -- writing -----------------------------------------------------------------------------


def put_record(
    writer: AcknowledgedWriter, topic: str, key: str, value: Mapping[str, Any]
) -> Written:
    """Write ``value`` under ``key``, acknowledged. A value that reads as the deletion
    marker is refused (ControlRecordError): use :func:`delete_record`."""
    if is_deletion(value):
        raise ControlRecordError(f'a value with "deleted": true would delete {key!r}')
    return writer.write(topic, encode_key(key), encode_value(value))


def delete_record(writer: AcknowledgedWriter, topic: str, key: str) -> Written:
    """Write the deletion marker for ``key``, acknowledged."""
    return writer.write(topic, encode_key(key), encode_value(DELETION_MARKER))


# -- decoding into models ----------------------------------------------------------------


class ValidRecords(Generic[ModelT]):
    """The last valid record per key of one topic, as ``model`` (see the module rule).

    Not thread-safe by itself: :class:`CompactedState` guards it. ``rejected`` holds,
    per key, why its latest record was refused, while that record is the latest.
    """

    def __init__(self, model: type[ModelT], *, topic: str = "") -> None:
        self.model = model
        self.topic = topic or model.__name__
        self.valid: dict[str, ModelT] = {}
        self.raw: dict[str, JsonObject] = {}
        self.rejected: dict[str, str] = {}
        self.invalid = 0
        self.changes = 0

    def apply_message(self, message: Any) -> bool:
        """Apply one Kafka record; whether the valid state changed."""
        try:
            key = decode_key(message.key())
        except ControlRecordError as exc:
            self._refuse(None, f"{exc}", message.offset())
            return False
        try:
            value = decode_value(message.value())
        except ControlRecordError as exc:
            self._refuse(key, str(exc), message.offset())
            return False
        return self.apply(key, value, offset=message.offset())

    def apply(self, key: str, value: Mapping[str, Any] | None, *, offset: Any = None) -> bool:
        """Apply one decoded record (None deletes the key); whether the state changed."""
        if value is None:
            self.rejected.pop(key, None)
            removed = self.valid.pop(key, None) is not None
            self.raw.pop(key, None)
            self.changes += removed
            return removed
        try:
            parsed = self.model.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "record"
            self._refuse(key, f"{where}: {first.get('msg', exc)}", offset)
            return False
        self.rejected.pop(key, None)
        self.valid[key] = parsed
        self.raw[key] = dict(value)
        self.changes += 1
        return True

    def _refuse(self, key: str | None, reason: str, offset: Any) -> None:
        self.invalid += 1
        if key is not None:
            self.rejected[key] = reason
        kept = "the previous valid record stays" if key in self.valid else "no valid record"
        log.error(
            "invalid record %r on %s at offset %s ignored (%s): %s",
            key,
            self.topic,
            offset,
            kept,
            reason,
        )


class _AnyJson(BaseModel):
    """Accepts any JSON object: for topics whose records are not checked on read."""

    model_config = {"extra": "allow"}


class CompactedState:
    """A follower fold: the last valid record per key of several compacted topics.

    ``models`` maps each topic to the model its records must satisfy; a topic mapped to
    None accepts any JSON object. Thread-safe: readers run in request threads while
    the follower thread applies records.
    """

    def __init__(self, models: Mapping[str, type[BaseModel] | None]) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, ValidRecords[Any]] = {
            topic: ValidRecords(model or _AnyJson, topic=topic) for topic, model in models.items()
        }

    def apply(self, message: Any) -> None:
        records = self._topics.get(str(message.topic()))
        if records is not None:
            with self._lock:
                records.apply_message(message)

    def records(self, topic: str) -> dict[str, JsonObject]:
        """A copy of the JSON of the valid records of ``topic`` by key."""
        with self._lock:
            return dict(self._topics[topic].raw)

    def get(self, topic: str, key: str) -> JsonObject | None:
        with self._lock:
            return self._topics[topic].raw.get(key)

    def model(self, topic: str, key: str) -> Any | None:
        """The last valid record of ``key`` on ``topic`` as its model, None if it has none.

        An invalid latest record leaves the previous valid one in force (the module rule):
        readers never re-validate the JSON themselves.
        """
        with self._lock:
            return self._topics[topic].valid.get(key)

    def models(self, topic: str) -> dict[str, Any]:
        """A copy of the valid records of ``topic`` as their models, by key."""
        with self._lock:
            return dict(self._topics[topic].valid)

    def invalid(self) -> int:
        """Invalid records seen on every topic so far."""
        with self._lock:
            return sum(records.invalid for records in self._topics.values())


def read_valid_records(
    bootstrap_servers: str,
    models: Mapping[str, type[ModelT]],
    *,
    timeout_seconds: float = 30.0,
) -> dict[str, ValidRecords[ModelT]]:
    """Each topic of ``models`` read to its end once, folded by the same rule."""
    folded: dict[str, ValidRecords[ModelT]] = {
        topic: ValidRecords(model, topic=topic) for topic, model in models.items()
    }
    topics: Iterable[str] = list(models)
    for message in read_topics_to_end(bootstrap_servers, topics, timeout_seconds=timeout_seconds):
        folded[str(message.topic())].apply_message(message)
    return folded
