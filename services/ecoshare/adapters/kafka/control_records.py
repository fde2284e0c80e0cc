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
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ecoshare.adapters.kafka.errors import ControlRecordError, WriteNotAcknowledgedError
from ecoshare.adapters.kafka.reading import read_topics_to_end
from ecoshare.adapters.kafka.writer import AcknowledgedWriter, Written

__all__ = [
    "DELETION_MARKER",
    "CompactedState",
    "ControlRecordError",
    "ControlRecordWriter",
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


class ControlRecordWriter:
    """The one writer of control records: records addressed by kind, acknowledged.

    Implements the use cases' record-writer port (``write(kind, key, model | None)``)
    for the API, the CLI and the demo, and offers ``put``/``delete`` of raw JSON for
    tools and tests that write what no model would (an invalid record, say).
    ``topics`` maps each kind to its topic (a callable may create the topic on first
    use). ``writer`` shares an open :class:`AcknowledgedWriter` (left open on close);
    without it one is opened on the first write. ``on_written`` runs after each
    acknowledgement: the API waits there until its own state shows the record.
    A record the cluster refuses or does not acknowledge raises
    :class:`WriteNotAcknowledgedError` naming the kind and key.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Mapping[str, str] | Callable[[str], str],
        *,
        timeout_seconds: float = 10.0,
        writer: AcknowledgedWriter | None = None,
        on_written: Callable[[Written], object] | None = None,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic_of = topics.__getitem__ if isinstance(topics, Mapping) else topics
        self._timeout_seconds = timeout_seconds
        self._writer = writer
        self._owns_writer = writer is None
        self._on_written = on_written

    def write(self, kind: str, key: str, value: BaseModel | None) -> None:
        """Put ``value`` (as ``model_dump(mode="json")``) under ``key``; None deletes it."""
        self._write(kind, key, None if value is None else value.model_dump(mode="json"))

    def put(self, kind: str, key: str, value: Mapping[str, Any]) -> int:
        """Write raw JSON ``value`` under ``key``; the record's offset in its partition."""
        if is_deletion(value):
            raise ControlRecordError(
                f'a value with "deleted": true would delete {kind} {key!r}; use delete()'
            )
        return self._write(kind, key, value).offset

    def delete(self, kind: str, key: str) -> int:
        """Write the deletion marker for ``key``; the record's offset in its partition."""
        return self._write(kind, key, None).offset

    def _write(self, kind: str, key: str, value: Mapping[str, Any] | None) -> Written:
        topic = self._topic_of(kind)
        if self._writer is None:
            self._writer = AcknowledgedWriter(
                self._bootstrap_servers, timeout_seconds=self._timeout_seconds
            )
        try:
            if value is None:
                written = delete_record(self._writer, topic, key)
            else:
                written = put_record(self._writer, topic, key, value)
        except WriteNotAcknowledgedError as exc:
            raise type(exc)(f"{kind} {key!r}: {exc}") from exc
        if self._on_written is not None:
            self._on_written(written)
        return written

    def close(self) -> None:
        if self._owns_writer and self._writer is not None:
            self._writer.close()
        self._writer = None if self._owns_writer else self._writer

    def __enter__(self) -> ControlRecordWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


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
