"""Every kind of bad input is quarantined with its reason; good events keep flowing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecoshare.codec.audit_blocks import DecisionRecord, QuarantineRecord, decode_audit_block
from ecoshare.codec.wire import frame
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.state import GovernanceState
from ecoshare.domain.timestamps import to_epoch_millis
from ecoshare.governance.engine import (
    REASON_HEADER,
    REDACTION_HEADER,
    GovernanceEngine,
    QuarantineReason,
)
from tests.unit.governed import (
    CORES,
    NAMES,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_codec_layout import _valid_store_status

NOW = datetime(2020, 3, 16, 12, tzinfo=UTC)
NOW_MS = to_epoch_millis(NOW)
TYPE = "StoreStatusChanged"


def _state(**consent_overrides: Any) -> GovernanceState:
    partners = [
        Partner(partner_id="postnl", name="PostNL", roles=frozenset({Role.PUBLISHER})),
        Partner(partner_id="shops", name="Shops", roles=frozenset({Role.PUBLISHER})),
        Partner(partner_id="carrier", name="Carrier", roles=frozenset({Role.SUBSCRIBER})),
    ]
    agreement = Agreement(
        agreement_id="agr-1",
        version=1,
        publishers=frozenset({"postnl", "shops"}),
        subscriber="carrier",
        event_types=frozenset({TYPE}),
        purpose="parcel-delivery",
        valid_from=NOW - timedelta(days=1),
        fields={
            "event_id": "deliver",
            "location_id": "deliver",
            "status": "deliver",
            "contact_name": "deliver",
            "contact_phone": {"action": "mask", "keep_last": 2},
        },
    )
    consent = ConsentRecord(
        consent_id="c-1",
        subject="owner-1",
        controller="postnl",
        grantee="carrier",
        purpose="parcel-delivery",
        scope=frozenset({"personal"}),
        given_at=NOW - timedelta(days=2),
        **consent_overrides,
    )
    return GovernanceState(partners, [agreement], [consent])


def _event(number: int, **overrides: Any) -> dict[str, Any]:
    return _valid_store_status(event_id=f"00000000-0000-4000-8000-{number:012d}", **overrides)


def _govern(engine: GovernanceEngine, messages: list[Any], state: GovernanceState | None = None):
    return engine.govern(messages, state or _state(), NOW, NOW_MS)


def _quarantined(result: Any) -> dict[int, str]:
    reasons: dict[int, str] = {}
    for output in result.outputs:
        if output.topic == NAMES.quarantine:
            headers = dict(output.headers)
            reasons[int(headers["ecoshare-original-offset"])] = headers[REASON_HEADER].decode()
    return reasons


@pytest.mark.parametrize("core", CORES)
def test_each_bad_input_is_quarantined_with_its_reason_while_good_events_flow(core: str) -> None:
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    good = encode_event(TYPE, _event(1))
    other_type = encode_event(
        "LocationAvailability",
        {
            "event_id": "00000000-0000-4000-8000-000000000099",
            "publisher_id": "postnl",
            "location_id": "sp-1",
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
        },
    )
    cases: list[tuple[bytes, dict[str, Any], str]] = [
        (good[:-7], {}, QuarantineReason.TRUNCATED_PAYLOAD),
        (b"\x01" + good[1:], {}, QuarantineReason.BAD_FRAMING),
        (frame(4242, good[5:]), {}, QuarantineReason.UNKNOWN_SCHEMA_ID),
        (other_type, {}, QuarantineReason.SCHEMA_NOT_FOR_TOPIC),
        (good + b"\x00" * 5000, {}, QuarantineReason.OVERSIZE_EVENT),
        (
            encode_event(TYPE, _event(3)),
            {"signer": "shops"},
            QuarantineReason.UNAUTHENTICATED_PUBLISHER,
        ),
        (
            encode_event(TYPE, _event(4, publisher_id="shops")),
            {},
            QuarantineReason.UNAUTHENTICATED_PUBLISHER,
        ),
        (
            encode_event(TYPE, _event(5)),
            {"key_generation": 2},
            QuarantineReason.UNAUTHENTICATED_PUBLISHER,
        ),
        (good + b"\x00", {}, QuarantineReason.TRAILING_BYTES),
    ]
    messages = [signed_message(TYPE, good, "postnl", offset=0)]
    for offset, (value, options, _) in enumerate(cases, start=1):
        messages.append(signed_message(TYPE, value, "postnl", offset=offset, **options))
    messages.append(signed_message(TYPE, good, "postnl", offset=len(cases) + 1))  # duplicate id
    unsigned = signed_message(TYPE, encode_event(TYPE, _event(7)), "postnl", offset=len(cases) + 2)
    unsigned.header_list = []
    messages.append(unsigned)
    messages.append(
        signed_message(TYPE, encode_event(TYPE, _event(8)), "postnl", offset=len(cases) + 3)
    )

    result = _govern(engine, messages)

    expected = {offset: reason.value for offset, (_, _, reason) in enumerate(cases, start=1)}
    expected[len(cases) + 1] = QuarantineReason.DUPLICATE_EVENT_ID.value
    expected[len(cases) + 2] = QuarantineReason.UNAUTHENTICATED_PUBLISHER.value
    assert _quarantined(result) == expected
    delivered = [o for o in result.outputs if o.topic == NAMES.delivery("carrier", TYPE)]
    assert [dict(o.headers)["ecoshare-source-offsets"] for o in delivered] == [b"0", b"12"]
    audit = [
        r for o in result.outputs if o.topic == NAMES.audit for r in decode_audit_block(o.value)
    ]
    assert sum(isinstance(r, QuarantineRecord) for r in audit) == len(expected)
    assert sum(isinstance(r, DecisionRecord) for r in audit) == 2


@pytest.mark.parametrize("core", CORES)
def test_quarantine_redacts_personal_fields_of_decodable_events(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    good = encode_event(TYPE, _event(1))
    result = _govern(
        engine,
        [signed_message(TYPE, good, "postnl"), signed_message(TYPE, good, "postnl", offset=1)],
    )
    (quarantined,) = [o for o in result.outputs if o.topic == NAMES.quarantine]
    assert dict(quarantined.headers)[REDACTION_HEADER] == b"personal-fields-nulled"
    assert b"Anna de Vries" in good
    assert b"Anna de Vries" not in quarantined.value
    assert b"+31 6 12345678" not in quarantined.value


@pytest.mark.parametrize("core", CORES)
def test_personal_fields_need_active_consent(core: str) -> None:
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    consented = _govern(engine, [signed_message(TYPE, encode_event(TYPE, _event(1)), "postnl")])
    withdrawn_state = _state(withdrawn_at=NOW - timedelta(seconds=1))
    withdrawn = _govern(
        engine,
        [signed_message(TYPE, encode_event(TYPE, _event(2)), "postnl", offset=1)],
        withdrawn_state,
    )
    topic = NAMES.delivery("carrier", TYPE)
    (before,) = [registry.decode(o.value) for o in consented.outputs if o.topic == topic]
    (after,) = [registry.decode(o.value) for o in withdrawn.outputs if o.topic == topic]
    assert before["contact_name"] == "Anna de Vries"
    assert before["contact_phone"] == "************78"
    assert after["contact_name"] is None and after["contact_phone"] is None
    assert set(after) == {"event_id", "location_id", "status", "contact_name", "contact_phone"}


@pytest.mark.parametrize("core", CORES)
def test_outputs_written_before_a_crash_are_not_written_again(core: str) -> None:
    engine = make_engine(RecordingRegistry(), core)
    window = engine.window(NAMES.ingress(TYPE), 0)
    topic = NAMES.delivery("carrier", TYPE)
    engine.adopt_partition(NAMES.ingress(TYPE), 0, window, {topic: {5}, NAMES.audit: {5}})
    messages = [
        signed_message(TYPE, encode_event(TYPE, _event(n)), "postnl", offset=n) for n in (5, 6)
    ]
    result = _govern(engine, messages)
    delivered = [
        dict(o.headers)["ecoshare-source-offsets"] for o in result.outputs if o.topic == topic
    ]
    assert delivered == [b"6"]
    audited = [
        r.offset
        for o in result.outputs
        if o.topic == NAMES.audit
        for r in decode_audit_block(o.value)
    ]
    assert audited == [6]


@pytest.mark.parametrize("disabled", ["publisher", "role"])
@pytest.mark.parametrize("core", CORES)
def test_a_disabled_or_non_publishing_partner_is_refused(disabled: str, core: str) -> None:
    state = _state()
    partner = state.partner("postnl")
    assert partner is not None
    changed = (
        partner.model_copy(update={"enabled": False})
        if disabled == "publisher"
        else partner.model_copy(update={"roles": frozenset({Role.SUBSCRIBER})})
    )
    result = _govern(
        make_engine(RecordingRegistry(), core),
        [signed_message(TYPE, encode_event(TYPE, _event(1)), "postnl")],
        state.with_partner(changed),
    )
    assert _quarantined(result) == {0: QuarantineReason.PUBLISHER_NOT_ALLOWED.value}


@pytest.mark.parametrize("core", CORES)
def test_a_refused_delivery_schema_withholds_with_a_named_reason(core: str) -> None:
    def refuse(topic: str, schema: dict[str, Any]) -> int:
        raise RuntimeError("409 incompatible with the subject's latest version")

    engine = make_engine(RecordingRegistry(), core, register_delivery_schema=refuse)
    result = _govern(engine, [signed_message(TYPE, encode_event(TYPE, _event(1)), "postnl")])
    assert not [o for o in result.outputs if o.topic == NAMES.delivery("carrier", TYPE)]
    (decision,) = [
        r for o in result.outputs if o.topic == NAMES.audit for r in decode_audit_block(o.value)
    ]
    assert isinstance(decision, DecisionRecord)
    assert decision.reason == "delivery_schema_refused"
    assert decision.agreement_id == "agr-1"
