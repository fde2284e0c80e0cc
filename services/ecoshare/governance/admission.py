"""Admission: whether an ingress message is an event the platform may govern.

Per message, in this order (the first failing check names the quarantine reason):
value present and within the size limit, publisher and signature headers present, a
known publisher whose key signed (event type, record key, value), framing, a writer
schema registered for this ingress topic, a strict scan of the body, the payload's
publisher equal to the signer, the signer enabled as a publisher, the record key equal
to the location id and on that key's partition, and the event id new to the
partition's duplicate window. The verdict is typed: :class:`Admitted` carries what
routing and rendering need, :class:`Refused` the reason and what can be told of it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType
from typing import Any, Protocol

from ecoshare.codec.errors import CodecError
from ecoshare.codec.layout import RecordLayout, compile_layout
from ecoshare.domain.identity import (
    PUBLISHER_HEADER,
    SIGNATURE_HEADER,
    partner_signing_key,
    sign_event,
)
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.dedup import DedupWindow
from ecoshare.governance.partitioning import key_partition

# The publisher label of a quarantined message whose sender could not be authenticated.
UNKNOWN_PUBLISHER = "unknown"


class QuarantineReason(StrEnum):
    """Why an ingress message was refused; carried in the quarantine reason header."""

    EMPTY_VALUE = "empty_value"
    OVERSIZE_EVENT = "oversize_event"
    UNAUTHENTICATED_PUBLISHER = "unauthenticated_publisher"
    PUBLISHER_NOT_ALLOWED = "publisher_not_allowed"
    BAD_FRAMING = "bad_framing"
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    SCHEMA_NOT_FOR_TOPIC = "schema_not_for_topic"
    TRUNCATED_PAYLOAD = "truncated_payload"
    TRAILING_BYTES = "trailing_bytes"
    INVALID_VALUE = "invalid_value"
    UNDECODABLE_PAYLOAD = "undecodable_payload"
    DUPLICATE_EVENT_ID = "duplicate_event_id"
    KEY_NOT_LOCATION = "key_not_location"
    WRONG_PARTITION = "wrong_partition"
    UNGOVERNABLE_EVENT = "ungovernable_event"


class IngressMessage(Protocol):
    """The parts of a confluent-kafka Message the engine reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...
    def timestamp(self) -> tuple[int, int]: ...


ADMISSION_FIELDS = ("event_id", "publisher_id", "location_id", "published_at", "contact_subject_id")
"""Envelope fields every event needs; the scanner decodes them in passing."""


@dataclass(frozen=True)
class WriterSchema:
    """A registered writer schema of an ingress topic, compiled."""

    schema_id: int
    event_type: str
    schema: dict[str, Any]
    layout: RecordLayout

    @classmethod
    def compile(cls, schema_id: int, event_type: str, schema: dict[str, Any]) -> WriterSchema:
        return cls(schema_id, event_type, schema, compile_layout(schema, ADMISSION_FIELDS))


class SchemaLookup(Protocol):
    """Resolves (ingress topic, schema id) to the compiled writer schema."""

    def writer(self, topic: str, schema_id: int) -> WriterSchema | None: ...

    def by_id(self, schema_id: int) -> WriterSchema | None: ...

    def subject_of(self, schema_id: int) -> str | None: ...


@dataclass(slots=True)  # not frozen: one per event, and frozen init costs on the hot path
class Admitted:
    """An authenticated, well-formed event, the first of its id on its partition.

    ``offsets`` are the field boundaries the scan found in ``body`` (the framed value):
    routing's row filters and rendering's plans read fields through them.
    """

    writer: WriterSchema
    body: bytes
    offsets: Sequence[int]
    event_id: str
    location_id: str
    published_ms: int
    subject: str | None  # contact_subject_id: whose consent personal fields need
    publisher: Partner

    @property
    def publisher_id(self) -> str:
        return self.publisher.partner_id


@dataclass(frozen=True, slots=True)
class Refused:
    """A message admission (or governing) refused: it goes to quarantine.

    ``event_id`` and ``publisher_id`` are set once known (the publisher once its
    signature verified); ``writer`` and ``offsets`` once the body scanned, so that the
    quarantined copy can have its personal fields nulled.
    """

    reason: QuarantineReason
    detail: str
    event_id: str | None = None
    publisher_id: str | None = None
    writer: WriterSchema | None = None
    offsets: Sequence[int] | None = None


def ungovernable(exc: BaseException, **known: Any) -> Refused:
    """The refusal of an event whose admission or governing raised ``exc``."""
    detail = f"the event could not be governed: {type(exc).__name__}: {exc}"
    return Refused(QuarantineReason.UNGOVERNABLE_EVENT, detail, **known)


class NativeLayouts:
    """The compiled core's scanner of each writer schema, built once per schema id."""

    def __init__(self, native: ModuleType) -> None:
        self._native = native
        self._layouts: dict[int, Any] = {}

    def of(self, writer: WriterSchema) -> Any:
        found = self._layouts.get(writer.schema_id)
        if found is None:
            found = self._layouts[writer.schema_id] = self._native.Layout(
                writer.schema, list(ADMISSION_FIELDS)
            )
        return found


class Admission:
    """The admission checks, with the duplicate window of every partition governed.

    ``native`` is the compiled core (``ecoshare._native``) or None for the Python
    reference; both decide identically (the test suite holds them equal).
    """

    def __init__(
        self,
        *,
        schemas: SchemaLookup,
        master_secret: bytes,
        max_event_bytes: int,
        ingress_partitions: Callable[[str], int],
        dedup_window_ms: int,
        dedup_capacity: int,
        native: ModuleType | None,
        native_layouts: NativeLayouts | None,
    ) -> None:
        self._schemas = schemas
        self._master_secret = master_secret
        self._max_event_bytes = max_event_bytes
        self._ingress_partitions = ingress_partitions
        self._dedup_window_ms = dedup_window_ms
        self._dedup_capacity = dedup_capacity
        self._native = native
        self._native_layouts = native_layouts
        self._windows: dict[tuple[str, int], DedupWindow] = {}
        # Keyed by generation too: a rotated key is a new entry, no snapshot to track.
        self._signing_keys: dict[tuple[str, int], bytes] = {}

    # -- duplicate windows ---------------------------------------------------------

    def new_window(self) -> DedupWindow:
        """An empty duplicate window of this core, size and duration."""
        if self._native is not None:
            window: DedupWindow = self._native.DedupWindow(
                self._dedup_window_ms, self._dedup_capacity
            )
            return window
        return DedupWindow(self._dedup_window_ms, self._dedup_capacity)

    def window(self, topic: str, partition: int) -> DedupWindow:
        key = (topic, partition)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self.new_window()
        return window

    def adopt_window(self, topic: str, partition: int, window: DedupWindow) -> None:
        self._windows[(topic, partition)] = window

    def release_window(self, topic: str, partition: int) -> None:
        self._windows.pop((topic, partition), None)

    def signing_key(self, partner: Partner) -> bytes:
        key = (partner.partner_id, partner.key_generation)
        found = self._signing_keys.get(key)
        if found is None:
            found = self._signing_keys[key] = partner_signing_key(
                self._master_secret, partner.partner_id, partner.key_generation
            )
        return found

    # -- the checks ----------------------------------------------------------------

    def admit(
        self,
        message: IngressMessage,
        state: GovernanceState,
        topic: str,
        partition: int,
        event_type: str,
        now_ms: int,
    ) -> Admitted | Refused:
        """The verdict on ``message``, read from ``topic``/``partition`` (the ingress
        topic of ``event_type``); an admitted event id enters the duplicate window."""
        value = message.value()
        if not value:
            return Refused(QuarantineReason.EMPTY_VALUE, "message has no value")
        if len(value) > self._max_event_bytes:
            return Refused(
                QuarantineReason.OVERSIZE_EVENT,
                f"{len(value)} bytes exceeds the limit of {self._max_event_bytes}",
            )
        claimed: bytes | None = None
        signature: bytes | None = None
        for name, header in message.headers() or ():
            if name == PUBLISHER_HEADER:
                claimed = header
            elif name == SIGNATURE_HEADER:
                signature = header
        if claimed is None or signature is None:
            return Refused(
                QuarantineReason.UNAUTHENTICATED_PUBLISHER, "publisher or signature header missing"
            )
        publisher_id = claimed.decode(errors="replace")
        partner = state.partner(publisher_id)
        if partner is None:
            return Refused(
                QuarantineReason.UNAUTHENTICATED_PUBLISHER, f"unknown publisher {publisher_id!r}"
            )
        record_key = message.key()
        native = self._native
        if native is not None:
            authentic = native.signature_matches(
                self.signing_key(partner), event_type, record_key, value, signature
            )
        else:
            expected = sign_event(self.signing_key(partner), event_type, record_key, value)
            authentic = hmac.compare_digest(expected, signature)
        if not authentic:
            return Refused(
                QuarantineReason.UNAUTHENTICATED_PUBLISHER,
                f"signature does not match publisher {publisher_id!r}",
            )
        if value[0] != 0 or len(value) < 5:
            return Refused(
                QuarantineReason.BAD_FRAMING,
                f"magic byte {value[0]} (expected 0)" if value[0] else "shorter than the header",
                publisher_id=publisher_id,
            )
        schema_id = int.from_bytes(value[1:5], "big")
        writer = self._schemas.writer(topic, schema_id)
        if writer is None:
            subject = self._schemas.subject_of(schema_id)
            if subject is None:
                return Refused(
                    QuarantineReason.UNKNOWN_SCHEMA_ID,
                    f"schema id {schema_id} is not registered",
                    publisher_id=publisher_id,
                )
            return Refused(
                QuarantineReason.SCHEMA_NOT_FOR_TOPIC,
                f"schema id {schema_id} is registered under {subject!r}, not this topic",
                publisher_id=publisher_id,
            )
        layout = writer.layout
        try:
            if self._native_layouts is not None:
                offsets, envelope = self._native_layouts.of(writer).scan_reading(value, 5)
            elif layout.scan_reading is not None:
                offsets, envelope = layout.scan_reading(value, 5)
            else:
                offsets = layout.scan(value, 5)
                envelope = tuple(
                    layout.read(name, value, offsets) if name in layout.readers else None
                    for name in ADMISSION_FIELDS
                )
            event_id, payload_publisher, location_id, published_ms, subject_id = envelope
            if not isinstance(event_id, str) or not isinstance(location_id, str):
                raise CodecError("event_id and location_id must be strings")
        except CodecError as exc:
            return Refused(QuarantineReason(exc.reason), str(exc), publisher_id=publisher_id)
        except (IndexError, UnicodeDecodeError, ValueError) as exc:
            return Refused(
                QuarantineReason.UNDECODABLE_PAYLOAD, str(exc), publisher_id=publisher_id
            )
        refusal = self._scanned_refusal(
            partner, payload_publisher, record_key, location_id, topic, partition
        )
        if refusal is None and not self.window(topic, partition).add(event_id, now_ms):
            refusal = (
                QuarantineReason.DUPLICATE_EVENT_ID,
                f"event id {event_id} was already processed",
            )
        if refusal is not None:
            return Refused(*refusal, event_id, publisher_id, writer, offsets)
        return Admitted(
            writer, value, offsets, event_id, location_id, published_ms or 0, subject_id, partner
        )

    def _scanned_refusal(
        self,
        partner: Partner,
        payload_publisher: Any,
        record_key: bytes | None,
        location_id: str,
        topic: str,
        partition: int,
    ) -> tuple[QuarantineReason, str] | None:
        """Why a scanned event from an authenticated ``partner`` is refused, if it is."""
        publisher_id = partner.partner_id
        if payload_publisher != publisher_id:
            return (
                QuarantineReason.UNAUTHENTICATED_PUBLISHER,
                f"event names publisher {payload_publisher!r} but was signed by {publisher_id!r}",
            )
        if not partner.enabled or Role.PUBLISHER not in partner.roles:
            return (
                QuarantineReason.PUBLISHER_NOT_ALLOWED,
                f"partner {publisher_id!r} is disabled or holds no publisher role",
            )
        # The signed key must be the location and the partition the key's: then the
        # duplicate window of that one partition sees every copy of the event.
        if record_key != location_id.encode():
            return (
                QuarantineReason.KEY_NOT_LOCATION,
                f"record key {record_key!r} is not the location id {location_id!r}",
            )
        partition_of = self._native.key_partition if self._native is not None else key_partition
        home = partition_of(record_key, self._ingress_partitions(topic))
        if home != partition:
            return (
                QuarantineReason.WRONG_PARTITION,
                f"key {record_key!r} belongs on partition {home}, not {partition}",
            )
        return None
