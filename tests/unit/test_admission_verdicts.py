"""Admission's typed verdicts: :class:`Admitted` carries the scanned event, :class:`Refused`
the reason and exactly what was known when the message was refused."""

from __future__ import annotations

from typing import Any

import pytest

from ecoshare.codec.wire import frame
from ecoshare.governance.engine import Admitted, QuarantineReason, Refused, WriterSchema
from ecoshare.governance.partitioning import key_partition
from ecoshare.governance.rendering import SOURCE_HEADER
from tests.unit.governed import (
    CORES,
    INGRESS_PARTITIONS,
    NAMES,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_engine_admission import NOW, NOW_MS, TYPE, _event, _state


@pytest.mark.parametrize("core", CORES)
def test_a_good_event_is_admitted_with_its_envelope_and_scan(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    value = encode_event(TYPE, _event(1))
    verdict = engine.admission(signed_message(TYPE, value, "postnl"), _state(), NOW_MS)
    assert isinstance(verdict, Admitted)
    assert verdict.event_id == _event(1)["event_id"]
    assert (verdict.location_id, verdict.subject) == ("sp-1", "owner-1")
    assert verdict.published_ms == _event(1)["published_at"]
    assert verdict.publisher_id == "postnl" and verdict.publisher.enabled
    assert verdict.writer.event_type == TYPE and verdict.body == value
    fields = verdict.writer.layout.field_names
    assert len(verdict.offsets) == len(fields) + 1
    assert verdict.offsets[0] == 5 and verdict.offsets[-1] == len(value)
    # Admitting enters the id in the partition's window: the same event again is refused.
    again = engine.admission(signed_message(TYPE, value, "postnl", offset=1), _state(), NOW_MS)
    assert isinstance(again, Refused)
    assert again.reason is QuarantineReason.DUPLICATE_EVENT_ID


@pytest.mark.parametrize("core", CORES)
def test_a_refusal_tells_only_what_was_known_when_it_was_refused(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    state = _state()
    good = encode_event(TYPE, _event(1))
    empty = signed_message(TYPE, good, "postnl")
    empty.value_bytes = None
    unsigned = signed_message(TYPE, good, "postnl")
    unsigned.header_list = []
    before_signature = [
        (empty, QuarantineReason.EMPTY_VALUE),
        (unsigned, QuarantineReason.UNAUTHENTICATED_PUBLISHER),
        (signed_message(TYPE, good, "nobody"), QuarantineReason.UNAUTHENTICATED_PUBLISHER),
    ]
    for message, reason in before_signature:
        verdict = engine.admission(message, state, NOW_MS)
        assert verdict == Refused(reason, verdict.detail), verdict  # nothing else known
        assert verdict.detail
    before_scan = [
        (signed_message(TYPE, b"\x01" + good[1:], "postnl"), QuarantineReason.BAD_FRAMING),
        (signed_message(TYPE, frame(4242, good[5:]), "postnl"), QuarantineReason.UNKNOWN_SCHEMA_ID),
        (signed_message(TYPE, good[:-7], "postnl"), QuarantineReason.TRUNCATED_PAYLOAD),
    ]
    for message, reason in before_scan:
        verdict = engine.admission(message, state, NOW_MS)
        assert isinstance(verdict, Refused)
        assert (verdict.reason, verdict.publisher_id) == (reason, "postnl")
        assert verdict.event_id is None and verdict.writer is None and verdict.offsets is None
    # Scanned, then refused: the event id is known and the body can be redacted.
    wrong_key = signed_message(TYPE, good, "postnl", record_key=b"sp-2")
    verdict = engine.admission(wrong_key, state, NOW_MS)
    assert isinstance(verdict, Refused)
    assert verdict.reason is QuarantineReason.KEY_NOT_LOCATION
    assert (verdict.event_id, verdict.publisher_id) == (_event(1)["event_id"], "postnl")
    assert isinstance(verdict.writer, WriterSchema) and verdict.offsets is not None
    assert engine.admission_refusal(wrong_key, state, NOW_MS) == (
        QuarantineReason.KEY_NOT_LOCATION,
        verdict.detail,
    )
    assert engine.admission_refusal(signed_message(TYPE, good, "postnl"), state, NOW_MS) is None


class _FailingSchemas:
    def writer(self, topic: str, schema_id: int) -> WriterSchema | None:
        raise ConnectionError("registry unreachable")

    def by_id(self, schema_id: int) -> WriterSchema | None:
        raise ConnectionError("registry unreachable")

    def subject_of(self, schema_id: int) -> str | None:
        return None


@pytest.mark.parametrize("core", CORES)
def test_an_admission_that_raises_is_an_ungovernable_refusal(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core, schemas=_FailingSchemas())
    message = signed_message(TYPE, encode_event(TYPE, _event(1)), "postnl", offset=3)
    verdict = engine.admission(message, _state(), NOW_MS)
    assert isinstance(verdict, Refused)
    assert verdict.reason is QuarantineReason.UNGOVERNABLE_EVENT
    assert "ConnectionError: registry unreachable" in verdict.detail
    # Governing the same message quarantines it (kept as it came: nothing decodes).
    result = engine.govern([message], _state(), NOW, NOW_MS)
    (quarantined,) = [o for o in result.outputs if o.topic == NAMES.quarantine]
    assert dict(quarantined.headers)["ecoshare-reason"] == b"ungovernable_event"
    assert quarantined.value == message.value()


# A location whose key lives on another ingress partition than sp-1's.
OTHER_LOCATION = next(
    f"sp-{n}"
    for n in range(2, 100)
    if key_partition(f"sp-{n}".encode(), INGRESS_PARTITIONS)
    != key_partition(b"sp-1", INGRESS_PARTITIONS)
)


def _two_partitions_two_types() -> list[Any]:
    availability = {
        "event_id": "00000000-0000-4000-8000-000000000099",
        "publisher_id": "postnl",
        "location_id": "sp-7",
        "location_name": "x",
        "capacity_kind": "PARCEL_LOCKER_SLOTS",
        "category": None,
        "available": 1,
        "capacity": 2,
        "postal_code": "1012 AB",
        "city": "Amsterdam",
        "latitude": 52.0,
        "longitude": 4.0,
        "contact_subject_id": None,
        "contact_name": None,
        "contact_phone": None,
        "occurred_at": 1,
        "published_at": 2,
    }
    good = encode_event(TYPE, _event(1))
    return [
        signed_message(TYPE, good, "postnl", offset=0),
        signed_message(TYPE, encode_event(TYPE, _event(2, location_id=OTHER_LOCATION)), "postnl"),
        signed_message(TYPE, good, "postnl", offset=1),  # a duplicate: quarantined
        signed_message(
            "LocationAvailability", encode_event("LocationAvailability", availability), "postnl"
        ),
    ]


@pytest.mark.parametrize("core", CORES)
def test_every_output_names_its_ingress_partition_as_a_field_and_on_the_wire(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    messages = _two_partitions_two_types()
    result = engine.govern(messages, _state(), NOW, NOW_MS)
    sources = {(m.topic(), m.partition()) for m in messages}
    assert len(sources) == 3 and set(result.partitions) == sources
    topics = {output.topic for output in result.outputs}
    assert {NAMES.audit, NAMES.quarantine, NAMES.delivery("carrier", TYPE)} <= topics
    for output in result.outputs:
        assert output.source in sources
        # The wire header says the same: recovery reads it from the output tails.
        assert (
            dict(output.headers)[SOURCE_HEADER] == f"{output.source[0]}:{output.source[1]}".encode()
        )
        assert output.partition == output.source[1]
    assert {o.source for o in result.outputs if o.topic == NAMES.audit} == sources
