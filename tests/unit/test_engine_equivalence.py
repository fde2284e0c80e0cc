"""The hot path decides exactly as the reference policy does.

For generated events, agreements, consents and moments, the engine (compiled scanners
and delivery plans, no full decode) and :func:`ecoshare.domain.policy.evaluate_event`
(plain dicts) must agree on every subscriber's outcome, reason, agreement version,
consent ids and field lists, and the bytes the engine delivers must decode to exactly
the record the reference projects. Together with the reference's own laws
(test_policy_properties), this carries "no forbidden field ever reaches a subscriber"
and "received = delivered + withheld + quarantined" over to the fast path.
"""

from __future__ import annotations

import pytest
from hypothesis import event, given, note, settings

from ecoshare.codec.audit_blocks import DecisionRecord, decode_audit_block
from ecoshare.domain.partners import Role
from ecoshare.domain.policy import evaluate_event
from ecoshare.domain.timestamps import to_epoch_millis
from tests.strategies import Scenario, governance_scenarios
from tests.unit.governed import (
    CORES,
    NAMES,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)


def _run_engine(scenario: Scenario, core: str) -> tuple[list, RecordingRegistry]:
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    value = encode_event(scenario.event_type, scenario.record)
    publisher = scenario.state.partner(scenario.publisher_id)
    message = signed_message(
        scenario.event_type,
        value,
        scenario.publisher_id,
        key_generation=publisher.key_generation if publisher else 1,
    )
    now_ms = to_epoch_millis(scenario.now)
    result = engine.govern([message], scenario.state, scenario.now, now_ms)
    return result.outputs, registry


@pytest.mark.parametrize("core", CORES)
@settings(max_examples=400)
@given(governance_scenarios())
def test_engine_agrees_with_the_reference_policy(core: str, scenario: Scenario) -> None:
    outputs, registry = _run_engine(scenario, core)
    publisher = scenario.state.partner(scenario.publisher_id)
    audit = [
        record
        for output in outputs
        if output.topic == NAMES.audit
        for record in decode_audit_block(output.value)
    ]
    candidates = scenario.state.candidate_subscribers(scenario.event_type)
    if publisher is None or not publisher.enabled or Role.PUBLISHER not in publisher.roles:
        # Refused at ingestion: quarantined once, counted for every candidate subscriber.
        assert [output.topic for output in outputs if output.topic != NAMES.audit] == [
            NAMES.quarantine
        ]
        assert len(audit) == 1
        assert audit[0].candidate_subscribers == tuple(candidates)  # type: ignore[union-attr]
        return
    reference = evaluate_event(
        scenario.record,
        scenario.event_type,
        scenario.publisher_id,
        scenario.state,
        scenario.classification,
        scenario.now,
        scenario.hash_keys,
    )
    decisions = [record for record in audit if isinstance(record, DecisionRecord)]
    # Conservation: one decision per candidate subscriber, nothing else.
    assert [d.subscriber_id for d in decisions] == [r.subscriber_id for r in reference]
    deliveries = {
        output.topic: output
        for output in outputs
        if output.topic.startswith(NAMES.prefix + "deliver.")
    }
    for expected, actual in zip(reference, decisions, strict=True):
        note(f"subscriber {expected.subscriber_id}: {expected}")
        event(f"{expected.outcome}:{expected.reason or ''}")
        if expected.delivered and any(
            expected.record.get(name) is not None  # type: ignore[union-attr]
            for name in ("contact_name", "contact_phone")
        ):
            event("delivered with consented personal values")
        assert actual.outcome == expected.outcome
        assert actual.reason == (expected.reason.value if expected.reason else None)
        assert actual.agreement_id == expected.agreement_id
        assert actual.agreement_version == expected.agreement_version
        topic = NAMES.delivery(expected.subscriber_id, scenario.event_type)
        if not expected.delivered:
            assert topic not in deliveries
            continue
        assert actual.consent_ids == expected.consent_ids
        assert actual.fields_delivered == expected.fields_delivered
        assert set(actual.fields_dropped) == set(expected.fields_dropped)
        assert actual.personal_fields_without_consent == expected.personal_fields_without_consent
        delivered = registry.decode(deliveries[topic].value)
        assert delivered == expected.record
        # What the subscriber's schema declares is exactly what the agreement grants.
        schema_id = int.from_bytes(deliveries[topic].value[1:5], "big")
        declared = [field["name"] for field in registry.schemas[schema_id]["fields"]]
        agreement = scenario.state.agreements[expected.agreement_id]  # type: ignore[index]
        assert set(declared) == agreement.granted_fields & set(scenario.classification)
