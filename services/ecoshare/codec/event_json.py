"""Events as JSON: from JSON to the Avro record of a catalog schema, and back.

Partners without Kafka send and receive events as JSON. Incoming JSON is converted by
walking the event's Avro schema, so every problem is reported with its field path
(``latitude``, ``address.postal_code``, ``[3].status`` for the fourth event of a batch)
before anything is encoded or published. Timestamps (``timestamp-millis``) are accepted
as ISO 8601 text with a time zone or as epoch milliseconds, and leave the platform as
ISO 8601 UTC text with milliseconds (``2020-03-16T08:30:00.000Z``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from ecoshare.domain.timestamps import from_epoch_millis, to_utc_millis
from ecoshare.sdk import EventTooLargeError, EventValidationError

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason a JSON event does not fit its schema."""

    field: str
    message: str
    too_large: bool = False
    """The event is larger than the platform accepts (HTTP answers 413, not 400)."""

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class _ProblemsError(Exception):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _problem(path: str, message: str) -> _ProblemsError:
    return _ProblemsError([FieldProblem(path, message)])


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, str):
        return avro_type
    if isinstance(avro_type, list):
        return " or ".join(_type_name(branch) for branch in avro_type)
    if avro_type.get("logicalType"):
        return str(avro_type["logicalType"])
    return str(avro_type.get("name") or avro_type.get("type"))


def parse_timestamp(value: object) -> datetime:
    """An aware UTC datetime (whole milliseconds) from ISO 8601 text or epoch millis.

    Raises ``ValueError`` with a readable message otherwise; text without a time zone
    is refused rather than guessed.
    """
    if isinstance(value, bool):
        raise ValueError("expected an ISO 8601 timestamp or epoch milliseconds, got a boolean")
    if isinstance(value, int):
        try:
            return from_epoch_millis(value)
        except OverflowError as exc:
            raise ValueError(f"{value} epoch milliseconds is out of range") from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from exc
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError(
                f"{value!r} has no time zone; add one, e.g. '2020-03-16T09:00:00+01:00' or 'Z'"
            )
        try:
            return to_utc_millis(parsed)
        except OverflowError as exc:
            raise ValueError(f"{value!r} is out of range") from exc
    raise ValueError(
        f"expected an ISO 8601 timestamp or epoch milliseconds, got {type(value).__name__}"
    )


class _Converter:
    def __init__(self) -> None:
        self.named: dict[str, Mapping[str, Any]] = {}

    def register(self, avro_type: Mapping[str, Any], namespace: str | None) -> str | None:
        name = avro_type["name"]
        space = avro_type.get("namespace", namespace)
        full = name if "." in name or not space else f"{space}.{name}"
        self.named[full] = avro_type
        self.named.setdefault(name.rsplit(".", 1)[-1], avro_type)
        return full.rpartition(".")[0] or None

    def convert(self, avro_type: Any, value: Any, path: str, namespace: str | None) -> Any:
        if isinstance(avro_type, list):
            return self._union(avro_type, value, path, namespace)
        if isinstance(avro_type, str):
            if avro_type in _PRIMITIVES:
                return self._primitive(avro_type, value, path)
            named = self.named.get(avro_type) or self.named.get(f"{namespace}.{avro_type}")
            if named is None:
                raise _problem(path or "(event)", f"unknown type {avro_type}")
            return self.convert(named, value, path, namespace)
        kind = avro_type.get("type")
        logical = avro_type.get("logicalType")
        if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
            try:
                return parse_timestamp(value)
            except ValueError as exc:
                raise _problem(path, str(exc)) from exc
        if kind == "record":
            inner = self.register(avro_type, namespace)
            return self._record(avro_type, value, path, inner)
        if kind == "enum":
            self.register(avro_type, namespace)
            symbols = list(avro_type["symbols"])
            if not isinstance(value, str) or value not in symbols:
                raise _problem(path, f"{value!r} is not one of {', '.join(symbols)}")
            return value
        if kind == "fixed":
            self.register(avro_type, namespace)
            raw = self._bytes(value, path)
            if len(raw) != avro_type["size"]:
                raise _problem(path, f"needs exactly {avro_type['size']} bytes")
            return raw
        if kind == "array":
            if not isinstance(value, list):
                raise _problem(path, f"expected an array, got {_json_kind(value)}")
            return self._each(
                [(f"{path}[{index}]", item) for index, item in enumerate(value)],
                avro_type["items"],
                namespace,
            )
        if kind == "map":
            if not isinstance(value, dict):
                raise _problem(path, f"expected an object, got {_json_kind(value)}")
            converted = self._each(
                [(_join(path, str(key)), item) for key, item in value.items()],
                avro_type["values"],
                namespace,
            )
            return dict(zip(value.keys(), converted, strict=True))
        if kind in _PRIMITIVES:
            return self._primitive(str(kind), value, path)
        raise _problem(path or "(event)", f"unsupported type {_type_name(avro_type)}")

    def _each(
        self, items: list[tuple[str, Any]], avro_type: Any, namespace: str | None
    ) -> list[Any]:
        problems: list[FieldProblem] = []
        converted: list[Any] = []
        for item_path, item in items:
            try:
                converted.append(self.convert(avro_type, item, item_path, namespace))
            except _ProblemsError as exc:
                problems.extend(exc.problems)
        if problems:
            raise _ProblemsError(problems)
        return converted

    def _record(
        self, schema: Mapping[str, Any], value: Any, path: str, namespace: str | None
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _problem(path or "(event)", f"expected an object, got {_json_kind(value)}")
        problems: list[FieldProblem] = []
        record: dict[str, Any] = {}
        known = set()
        for field in schema["fields"]:
            name = field["name"]
            known.add(name)
            field_path = _join(path, name)
            if name not in value:
                if "default" in field:
                    record[name] = field["default"]
                    continue
                problems.append(FieldProblem(field_path, "is required"))
                continue
            try:
                record[name] = self.convert(field["type"], value[name], field_path, namespace)
            except _ProblemsError as exc:
                problems.extend(exc.problems)
        problems.extend(
            FieldProblem(_join(path, str(name)), "is not a field of this event type")
            for name in value
            if name not in known
        )
        if problems:
            raise _ProblemsError(problems)
        return record

    def _union(self, branches: list[Any], value: Any, path: str, namespace: str | None) -> Any:
        if value is None:
            if "null" in branches:
                return None
            raise _problem(path, "must not be null")
        candidates = [branch for branch in branches if branch != "null"]
        failures: list[FieldProblem] = []
        for branch in candidates:
            try:
                return self.convert(branch, value, path, namespace)
            except _ProblemsError as exc:
                failures.extend(exc.problems)
        if len(candidates) == 1:
            raise _ProblemsError(failures)
        raise _problem(path, f"{value!r} is none of {_type_name(candidates)}")

    def _primitive(self, kind: str, value: Any, path: str) -> Any:
        if kind == "null":
            if value is not None:
                raise _problem(path, "must be null")
            return None
        if kind == "boolean":
            if not isinstance(value, bool):
                raise _problem(path, f"expected true or false, got {value!r}")
            return value
        if kind in _INT_RANGE:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _problem(path, f"expected an integer, got {value!r}")
            low, high = _INT_RANGE[kind]
            if not low <= value <= high:
                raise _problem(path, f"{value} is out of range for {kind}")
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _problem(path, f"expected a number, got {value!r}")
            return float(value)
        if kind == "string":
            if not isinstance(value, str):
                raise _problem(path, f"expected a string, got {_json_kind(value)}")
            return value
        return self._bytes(value, path)

    def _bytes(self, value: Any, path: str) -> bytes:
        if not isinstance(value, str):
            raise _problem(path, "expected base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise _problem(path, "expected base64 text") from exc


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def record_from_json(
    schema: Mapping[str, Any], value: Any, path: str = ""
) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """The Avro record for a JSON event, or None and every problem found.

    ``schema`` is the event's Avro schema as JSON (the catalog's, custom attributes and
    all). Fields with a default may be left out; unknown fields are refused.
    """
    converter = _Converter()
    namespace = schema.get("namespace")
    try:
        inner = converter.register(schema, namespace)
        return converter.convert(schema, value, path, inner), []
    except _ProblemsError as exc:
        return None, exc.problems


def fill_envelope(event: dict[str, Any], publisher_id: str, now: datetime) -> dict[str, Any]:
    """``event`` with the envelope fields the platform may fill in: a new UUID as
    ``event_id``, the publisher's id as ``publisher_id`` and ``now`` as ``published_at``."""
    filled = dict(event)
    filled.setdefault("event_id", str(uuid.uuid4()))
    filled.setdefault("publisher_id", publisher_id)
    filled.setdefault("published_at", int(now.timestamp() * 1000))
    return filled


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
                    _join(prefix, "publisher_id"),
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
            problems.append(FieldProblem(_join(prefix, exc.field), exc.message))
            continue
        encoded.append((key, value))
        event_ids.append(str(record["event_id"]))
    return encoded, event_ids, problems


def to_json_value(value: Any) -> Any:
    """``value`` (as fastavro reads it) with every non-JSON type made JSON-ready."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def delivery_to_json(
    *,
    topic: str,
    partition: int,
    offset: int,
    headers: Mapping[str, bytes],
    record: Mapping[str, Any],
) -> dict[str, Any]:
    """A governed delivery as the HTTP interfaces (SSE, webhooks) hand it out."""

    def header(name: str) -> str | None:
        raw = headers.get(name)
        return raw.decode(errors="replace") if raw else None

    return {
        "delivery_id": f"{topic}:{partition}:{offset}",
        "event_id": header("ecoshare-event-id"),
        "agreement": header("ecoshare-agreement"),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "record": to_json_value(dict(record)),
    }
