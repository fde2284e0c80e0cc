"""The hot path decides exactly as the reference policy does, batch by batch.

For generated governance states and moments, and batches of events (several event
types and publishers, some exact copies of an earlier event), the engine (compiled
scanners and delivery plans, no full decode, routes and plans cached per batch) and
:func:`ecoshare.domain.policy.evaluate_event` (plain dicts, one event at a time) must
agree on every subscriber's outcome, reason, agreement version, consent ids and field
lists, and the bytes the engine delivers must decode to exactly the record the
reference projects. Together with the reference's own laws (test_policy_properties),
this carries "no forbidden field ever reaches a subscriber" and "received = delivered
+ withheld + quarantined" over to the fast path, for both cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from ecoshare.codec.audit_blocks import DecisionRecord, QuarantineRecord, decode_audit_block
from ecoshare.domain.partners import Role
from ecoshare.domain.policy import AgreementRateLimiter, evaluate_event
from ecoshare.domain.timestamps import to_epoch_millis
from ecoshare.governance.progress import SOURCE_OFFSETS_HEADER
from tests.strategies import (
    EVENT_TYPES,
    Scenario,
    classification_of,
    event_records,
    governance_scenarios,
)
from tests.unit.governed import (
    CORES,
    NAMES,
    IngressRecord,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_admission_verdicts import _two_partitions_two_types
from tests.unit.test_engine_admission import NOW, NOW_MS, TYPE
from tests.unit.test_engine_admission import _state as _admission_state


@dataclass(frozen=True)
class BatchScenario:
    """A state and a moment (from a whole scenario) and the events of one batch."""

    base: Scenario
    events: tuple[tuple[str, dict[str, Any]], ...]  # (event type, Avro record)


@st.composite
def governed_batches(draw: st.DrawFn) -> BatchScenario:
    """One to eight events under one state; one in five an exact copy of an earlier one
    (same key, same partition: a duplicate), the others fresh, of either event type."""
    base = draw(governance_scenarios(with_limits=draw(st.booleans())))
    events = [(base.event_type, base.record)]
    for _ in range(draw(st.integers(0, 7))):
        if draw(st.integers(0, 4)) == 0:
            events.append(events[draw(st.integers(0, len(events) - 1))])
        else:
            event_type = draw(st.sampled_from(EVENT_TYPES))
            events.append((event_type, draw(event_records(event_type))))
    return BatchScenario(base, tuple(events))


def _messages(batch: BatchScenario) -> list[IngressRecord]:
    """The batch's ingress messages, offsets counted per partition as a broker would."""
    state = batch.base.state
    next_offsets: dict[tuple[str, int], int] = {}
    messages = []
    for event_type, record in batch.events:
        publisher = state.partner(record["publisher_id"])
        message = signed_message(
            event_type,
            encode_event(event_type, record),
            record["publisher_id"],
            key_generation=publisher.key_generation if publisher else 1,
        )
        position = (message.topic(), message.partition())
        message.offset_number = next_offsets.get(position, 0)
        next_offsets[position] = message.offset_number + 1
        messages.append(message)
    return messages


@pytest.mark.parametrize("core", CORES)
@settings(max_examples=200)
@given(governed_batches())
def test_engine_agrees_with_the_reference_policy(core: str, batch: BatchScenario) -> None:
    base = batch.base
    state = base.state
    registry = RecordingRegistry()
    engine = make_engine(registry, core)
    messages = _messages(batch)
    result = engine.govern(messages, state, base.now, to_epoch_millis(base.now))
    decided: dict[tuple[str, int], list[DecisionRecord]] = {}
    refused: dict[tuple[str, int], QuarantineRecord] = {}
    for output in result.outputs:
        if output.topic == NAMES.audit:
            for record in decode_audit_block(output.value):
                position = (record.source, record.offset)
                if isinstance(record, QuarantineRecord):
                    refused[position] = record
                else:
                    decided.setdefault(position, []).append(record)
    deliveries = {
        (output.topic, output.source, dict(output.headers)[SOURCE_OFFSETS_HEADER]): output
        for output in result.outputs
        if output.topic.startswith(NAMES.prefix + "deliver.")
    }
    # The reference, event by event in batch order; a rate limit's tokens carry over.
    limiter = AgreementRateLimiter()
    admitted: set[tuple[str, int, str]] = set()
    expected_deliveries = set()
    for message, (event_type, record) in zip(messages, batch.events, strict=True):
        source = (message.topic(), message.partition())
        position = (f"{source[0]}:{source[1]}", message.offset())
        publisher = state.partner(record["publisher_id"])
        candidates = state.candidate_subscribers(event_type)
        if publisher is None or not publisher.enabled or Role.PUBLISHER not in publisher.roles:
            # Refused at ingestion: quarantined once, counted for every candidate subscriber.
            assert position not in decided
            assert refused[position].candidate_subscribers == tuple(candidates)
            continue
        if (*source, record["event_id"]) in admitted:
            assert position not in decided
            assert refused[position].reason == "duplicate_event_id"
            event("duplicate in the batch")
            continue
        admitted.add((*source, record["event_id"]))
        assert position not in refused
        reference = evaluate_event(
            record,
            event_type,
            record["publisher_id"],
            state,
            classification_of(event_type),
            base.now,
            base.hash_keys,
            limiter,
        )
        decisions = decided.get(position, [])
        # Conservation: one decision per candidate subscriber, nothing else.
        assert [d.subscriber_id for d in decisions] == [r.subscriber_id for r in reference]
        for expected, actual in zip(reference, decisions, strict=True):
            note(f"{record['event_id']} for {expected.subscriber_id}: {expected}")
            event(f"{expected.outcome}:{expected.reason or ''}")
            assert actual.outcome == expected.outcome
            assert actual.reason == (expected.reason.value if expected.reason else None)
            assert actual.agreement_id == expected.agreement_id
            assert actual.agreement_version == expected.agreement_version
            if not expected.delivered:
                continue
            if any(
                expected.record.get(name) is not None  # type: ignore[union-attr]
                for name in ("contact_name", "contact_phone")
            ):
                event("delivered with consented personal values")
            assert actual.consent_ids == expected.consent_ids
            assert actual.fields_delivered == expected.fields_delivered
            assert set(actual.fields_dropped) == set(expected.fields_dropped)
            assert (
                actual.personal_fields_without_consent == expected.personal_fields_without_consent
            )
            topic = NAMES.delivery(expected.subscriber_id, event_type)
            delivery = deliveries[(topic, source, str(message.offset()).encode())]
            expected_deliveries.add((topic, source, str(message.offset()).encode()))
            assert registry.decode(delivery.value) == expected.record
            # What the subscriber's schema declares is exactly what the agreement grants.
            schema_id = int.from_bytes(delivery.value[1:5], "big")
            declared = [field["name"] for field in registry.schemas[schema_id]["fields"]]
            agreement = state.agreements[expected.agreement_id]  # type: ignore[index]
            assert set(declared) == agreement.granted_fields & set(classification_of(event_type))
    # Nothing is delivered that the reference withholds.
    assert set(deliveries) == expected_deliveries
    event(f"{len(batch.events)} events in the batch")


@pytest.mark.parametrize("core", CORES)
def test_one_agreement_over_two_event_types_audits_each_types_own_fields(core: str) -> None:
    # Found by the batch property above: a batch's delivered-decision templates were
    # shared across writer schemas, so the second event type's audit listed the first's.
    # Without consent both types' personal fields are dropped: the same "missing" fields.
    state = _admission_state(withdrawn_at=NOW - timedelta(seconds=1))
    agreement = state.agreements["agr-1"]
    both = agreement.model_copy(update={"event_types": frozenset({TYPE, "LocationAvailability"})})
    engine = make_engine(RecordingRegistry(), core)
    result = engine.govern(_two_partitions_two_types(), state.with_agreement(both), NOW, NOW_MS)
    delivered = {
        (record.event_type, tuple(record.fields_delivered))
        for output in result.outputs
        if output.topic == NAMES.audit
        for record in decode_audit_block(output.value)
        if isinstance(record, DecisionRecord) and record.outcome == "delivered"
    }
    assert delivered == {
        (TYPE, ("event_id", "location_id", "status")),
        ("LocationAvailability", ("event_id", "location_id")),
    }
