"""Hot-path hardening in the engine: no input stops a partition, no duplicate through another
partition, quarantine redacts whatever decodes."""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta
from typing import Any

import fastavro
import pytest

from ecoshare.codec.layout import compile_layout
from ecoshare.codec.wire import frame
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.engine import REASON_HEADER, REDACTION_HEADER, QuarantineReason
from ecoshare.governance.partitioning import key_partition
from tests.strategies import CATALOG
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
from tests.unit.test_scanner_strictness import _availability

DELIVERY = NAMES.delivery("carrier", TYPE)


def _with_field(value: bytes, name: str, raw: bytes) -> bytes:
    layout = compile_layout(CATALOG.event_schema(TYPE))
    offsets = layout.offsets(value, 5)
    index = layout.field_index[name]
    return value[: offsets[index]] + raw + value[offsets[index + 1] :]


def _reasons(result: Any) -> list[str]:
    return [
        dict(o.headers)[REASON_HEADER].decode()
        for o in result.outputs
        if o.topic == NAMES.quarantine
    ]


def _delivered_ids(result: Any, registry: RecordingRegistry) -> list[str]:
    return [registry.decode(o.value)["event_id"] for o in result.outputs if o.topic == DELIVERY]


def _generalising_state() -> GovernanceState:
    """The admission tests' state, with effective_from generalised to the hour."""
    base = _state()
    partners = [p for p in (base.partner(n) for n in ("postnl", "shops", "carrier")) if p]
    agreement = Agreement(
        agreement_id="agr-g",
        version=1,
        publishers=frozenset({"postnl"}),
        subscriber="carrier",
        event_types=frozenset({TYPE}),
        purpose="parcel-delivery",
        valid_from=NOW - timedelta(days=1),
        fields={
            "event_id": "deliver",
            "effective_from": {"action": "generalise", "truncate_to": "hour"},
        },
    )
    return GovernanceState(partners, [agreement], [])


@pytest.mark.parametrize(
    "raw",
    [b"\x80" * 10 + b"\x00", b"\xff" * 9 + b"\x7f"],
    ids=["11-byte varint", "beyond 64 bits"],
)
@pytest.mark.parametrize("core", CORES)
def test_a_bad_long_in_a_field_read_after_admission_is_quarantined_not_raised(
    raw: bytes, core: str
) -> None:
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    poison = _with_field(encode_event(TYPE, _event(1)), "effective_from", raw)
    after = encode_event(TYPE, _event(2))
    result = engine.govern(
        [signed_message(TYPE, poison, "postnl"), signed_message(TYPE, after, "postnl", offset=1)],
        _generalising_state(),
        NOW,
        NOW_MS,
    )
    assert _reasons(result) == [QuarantineReason.INVALID_VALUE.value]
    assert _delivered_ids(result, registry) == [_event(2)["event_id"]]


@pytest.mark.parametrize("core", CORES)
def test_an_event_that_fails_while_governed_is_quarantined_and_the_partition_moves_on(
    core: str,
) -> None:
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    state = _state()
    first = encode_event(TYPE, _event(1))
    engine.govern([signed_message(TYPE, first, "postnl")], state, NOW, NOW_MS)  # plans compiled

    def failing_render(body: bytes, offsets: Any, allowed: Any) -> bytes:
        raise RuntimeError("a defect no test foresaw")

    def failing_field(body: bytes, start: int, end: int) -> bytes:
        raise RuntimeError("a defect no test foresaw")

    for key, found in list(engine.plans.compiled.items()):
        if not isinstance(found, str):
            # Both renderers fail: the Python one and the native one (through its ops).
            failing = dataclasses.replace(
                found[0], render=failing_render, render_ops=(("call", 0, failing_field),)
            )
            engine.plans.compiled[key] = (failing, found[1])
    poison = encode_event(TYPE, _event(2))
    result = engine.govern([signed_message(TYPE, poison, "postnl", offset=1)], state, NOW, NOW_MS)
    assert _reasons(result) == [QuarantineReason.UNGOVERNABLE_EVENT.value]
    (quarantined,) = [o for o in result.outputs if o.topic == NAMES.quarantine]
    assert b"RuntimeError" in dict(quarantined.headers)["ecoshare-detail"]
    assert b"Anna de Vries" not in quarantined.value  # redacted like any other refusal
    assert not [o for o in result.outputs if o.topic == DELIVERY]
    counts = result.counts
    assert counts.subscriber_received == counts.subscriber_quarantined == {("carrier", TYPE): 1}
    assert not counts.delivered and not counts.withheld and not counts.admitted


@pytest.mark.parametrize("core", CORES)
def test_a_delivered_event_replayed_to_every_other_partition_is_quarantined(core: str) -> None:
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    value = encode_event(TYPE, _event(1))
    original = signed_message(TYPE, value, "postnl")
    home = original.partition()
    replays = []
    for partition in range(INGRESS_PARTITIONS):
        if partition != home:
            replay = signed_message(TYPE, value, "postnl", partition=partition, offset=7)
            assert replay.header_list == original.header_list  # the exact signed copy
            replays.append(replay)
    result = engine.govern([original, *replays], _state(), NOW, NOW_MS)
    assert _delivered_ids(result, registry) == [_event(1)["event_id"]]
    assert _reasons(result) == [QuarantineReason.WRONG_PARTITION.value] * (INGRESS_PARTITIONS - 1)
    again = engine.govern([signed_message(TYPE, value, "postnl", offset=9)], _state(), NOW, NOW_MS)
    assert _reasons(again) == [QuarantineReason.DUPLICATE_EVENT_ID.value]


@pytest.mark.parametrize("core", CORES)
def test_a_record_key_other_than_the_location_is_quarantined(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    value = encode_event(TYPE, _event(1))
    other_key = b"sp-elsewhere"
    message = signed_message(
        TYPE,
        value,
        "postnl",
        record_key=other_key,
        partition=key_partition(other_key, INGRESS_PARTITIONS),
    )
    result = engine.govern([message], _state(), NOW, NOW_MS)
    assert _reasons(result) == [QuarantineReason.KEY_NOT_LOCATION.value]


@pytest.mark.parametrize("core", CORES)
def test_a_signature_does_not_cover_another_key(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    value = encode_event(TYPE, _event(1))
    message = signed_message(TYPE, value, "postnl")
    message.key_bytes = b"sp-2"  # same signed bytes, key swapped
    message.partition_number = key_partition(b"sp-2", INGRESS_PARTITIONS)
    result = engine.govern([message], _state(), NOW, NOW_MS)
    assert _reasons(result) == [QuarantineReason.UNAUTHENTICATED_PUBLISHER.value]


def _quarantined_record(output: Any, event_type: str) -> dict[str, Any]:
    parsed = CATALOG.parsed_schema(event_type)
    return dict(fastavro.schemaless_reader(io.BytesIO(output.value[5:]), parsed, None))  # type: ignore[call-overload]


@pytest.mark.parametrize("core", CORES)
def test_quarantine_redacts_personal_fields_whatever_the_reason(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core, max_event_bytes=300)
    good = encode_event(TYPE, _event(1))
    availability = encode_event(
        "LocationAvailability",
        {
            **_availability(),
            "contact_subject_id": "owner-9",
            "contact_name": "Bram Jansen",
            "contact_phone": "+31 6 87654321",
        },
    )
    long_name = encode_event(TYPE, _event(3, location_name="x" * 200))
    unsigned = signed_message(TYPE, encode_event(TYPE, _event(4)), "postnl", offset=4)
    unsigned.header_list = []
    cases = [
        (signed_message(TYPE, good, "postnl", offset=0), None),
        (signed_message(TYPE, good, "postnl", signer="shops", offset=1), "unauthenticated"),
        (signed_message(TYPE, good, "nobody", offset=2), "unauthenticated"),
        (signed_message(TYPE, long_name, "postnl", offset=3), "oversize"),
        (unsigned, "unauthenticated"),
        (signed_message(TYPE, availability, "postnl", offset=5), "schema_not_for_topic"),
        (signed_message(TYPE, good, "postnl", offset=6), "duplicate"),
        (signed_message(TYPE, good, "postnl", offset=7, partition=3 - 0), "wrong_partition"),
    ]
    messages = [message for message, _ in cases]
    if messages[-1].partition() == messages[0].partition():
        messages[-1].partition_number = (messages[0].partition() + 1) % INGRESS_PARTITIONS
    result = engine.govern(messages, _state(), NOW, NOW_MS)
    quarantined = [o for o in result.outputs if o.topic == NAMES.quarantine]
    assert len(quarantined) == len(cases) - 1
    for output in quarantined:
        headers = dict(output.headers)
        assert headers[REDACTION_HEADER] == b"personal-fields-nulled", headers[REASON_HEADER]
        event_type = "LocationAvailability" if output.value[1:5] == availability[1:5] else TYPE
        record = _quarantined_record(output, event_type)
        assert record["contact_name"] is None and record["contact_phone"] is None, headers
    assert {dict(o.headers)[REASON_HEADER].decode() for o in quarantined} == {
        "unauthenticated_publisher",
        "oversize_event",
        "schema_not_for_topic",
        "duplicate_event_id",
        "wrong_partition",
    }


@pytest.mark.parametrize("core", CORES)
def test_an_undecodable_body_is_kept_as_it_came(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    garbage = frame(1, b"\xff\xff")
    result = engine.govern([signed_message(TYPE, garbage, "postnl")], _state(), NOW, NOW_MS)
    (output,) = [o for o in result.outputs if o.topic == NAMES.quarantine]
    assert dict(output.headers)[REDACTION_HEADER] == b"undecodable-kept-as-is"
    assert output.value == garbage


def test_personal_partners_are_known() -> None:
    # guard for the fixtures above: the signer "nobody" is unknown, "shops" is known
    assert _state().partner("nobody") is None
    assert isinstance(_state().partner("shops"), Partner)
    assert Role.PUBLISHER in _state().partner("shops").roles  # type: ignore[union-attr]
