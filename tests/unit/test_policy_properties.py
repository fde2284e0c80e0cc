"""Laws of the reference policy, over generated events, agreements and consents.

- nothing the agreement does not grant ever reaches a subscriber;
- no personal value reaches a subscriber without an active matching consent;
- every delivered record satisfies the row filters of the agreement it names;
- every candidate subscriber gets exactly one decision, delivered or withheld;
- a delivered record encodes with the subscriber's projected schema.

The consent oracle below re-derives consent from the raw records on purpose, without
the ConsentIndex the policy uses.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import fastavro
from hypothesis import given, note
from hypothesis import strategies as st

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.classification import Classification
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.policy import AgreementRateLimiter, Decision, evaluate_event
from ecoshare.domain.projection import projected_schema
from tests.strategies import Scenario, governance_scenarios


def _evaluate(scenario: Scenario, limiter: AgreementRateLimiter | None = None) -> list[Decision]:
    note(f"now={scenario.now.isoformat()} record={scenario.record}")
    return evaluate_event(
        scenario.record,
        scenario.event_type,
        scenario.publisher_id,
        scenario.state,
        scenario.classification,
        scenario.now,
        scenario.hash_keys,
        limiter,
    )


def _agreement_of(scenario: Scenario, decision: Decision) -> Agreement:
    assert decision.agreement_id is not None
    agreement = scenario.state.agreements[decision.agreement_id]
    assert agreement.version == decision.agreement_version
    return agreement


def _consent_allows(
    consent: ConsentRecord,
    scenario: Scenario,
    subscriber_id: str,
    purpose: str,
    field: str,
    now: datetime,
) -> bool:
    active = (
        consent.given_at <= now
        and (consent.expires_at is None or now < consent.expires_at)
        and (consent.withdrawn_at is None or now < consent.withdrawn_at)
    )
    return (
        active
        and consent.subject == scenario.record["contact_subject_id"]
        and consent.controller == scenario.publisher_id
        and consent.grantee in (subscriber_id, "*")
        and consent.purpose == purpose
        and (field in consent.scope or "personal" in consent.scope)
    )


@given(governance_scenarios())
def test_only_granted_fields_are_delivered(scenario: Scenario) -> None:
    for decision in _evaluate(scenario):
        if not decision.delivered:
            continue
        assert decision.record is not None
        agreement = _agreement_of(scenario, decision)
        granted = {name for name, rule in agreement.fields.items() if rule.grants}
        assert set(decision.record) <= granted
        assert set(decision.record) == granted & set(scenario.classification)
        assert list(decision.record) == [
            name for name in scenario.classification if name in decision.record
        ]
        for name in set(scenario.classification) - granted:
            assert name in decision.fields_dropped


@given(governance_scenarios())
def test_no_personal_value_without_an_active_matching_consent(scenario: Scenario) -> None:
    consents = list(scenario.state.consents)
    for decision in _evaluate(scenario):
        if not decision.delivered:
            continue
        assert decision.record is not None
        agreement = _agreement_of(scenario, decision)
        purpose = agreement.consent_purpose or agreement.purpose
        for name, value in decision.record.items():
            if scenario.classification[name] is not Classification.PERSONAL:
                continue
            allowing = {
                consent.consent_id
                for consent in consents
                if _consent_allows(
                    consent, scenario, decision.subscriber_id, purpose, name, scenario.now
                )
            }
            if value is not None:
                assert allowing, f"{name} delivered to {decision.subscriber_id} without consent"
                assert allowing <= set(decision.consent_ids)
            if not allowing:
                assert value is None
                assert name in decision.personal_fields_without_consent
                assert name in decision.fields_dropped


@given(governance_scenarios())
def test_withdrawing_every_consent_removes_every_personal_value(scenario: Scenario) -> None:
    state = scenario.state
    for consent in list(state.consents):
        state = state.with_consent(consent.model_copy(update={"withdrawn_at": scenario.now}))
    withdrawn = scenario.with_state(state)
    for decision in _evaluate(withdrawn):
        assert decision.consent_ids == ()
        for name, value in (decision.record or {}).items():
            if scenario.classification[name] is Classification.PERSONAL:
                assert value is None


@given(governance_scenarios())
def test_delivered_records_satisfy_the_agreements_row_filters(scenario: Scenario) -> None:
    for decision in _evaluate(scenario):
        if decision.delivered:
            agreement = _agreement_of(scenario, decision)
            assert all(item.matches(scenario.record) for item in agreement.row_filters)
            assert agreement.is_in_force(scenario.now)
            assert agreement.covers(scenario.publisher_id, scenario.event_type)
            assert agreement.subscriber == decision.subscriber_id


@given(governance_scenarios(with_limits=True), st.integers(1, 4))
def test_one_decision_per_candidate_subscriber(scenario: Scenario, repeats: int) -> None:
    limiter = AgreementRateLimiter()
    candidates = scenario.state.candidate_subscribers(scenario.event_type)
    for _ in range(repeats):
        decisions = _evaluate(scenario, limiter)
        assert [decision.subscriber_id for decision in decisions] == candidates
        delivered = [decision for decision in decisions if decision.delivered]
        withheld = [decision for decision in decisions if decision.outcome == "withheld"]
        assert len(delivered) + len(withheld) == len(candidates)
        for decision in delivered:
            assert decision.reason is None
            assert decision.record is not None
            assert set(decision.fields_delivered).isdisjoint(decision.fields_dropped)
            assert set(decision.fields_delivered) | set(decision.fields_dropped) == set(
                scenario.classification
            )
        for decision in withheld:
            assert decision.reason is not None
            assert decision.record is None


@given(governance_scenarios())
def test_delivered_records_encode_with_the_projected_schema(scenario: Scenario) -> None:
    for decision in _evaluate(scenario):
        if not decision.delivered:
            continue
        agreement = _agreement_of(scenario, decision)
        schema = projected_schema(scenario.event_schema, agreement, decision.subscriber_id)
        parsed: Any = fastavro.parse_schema(schema)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, decision.record)
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, parsed, None) == decision.record
