"""The accounting laws hold in the metrics a worker exposes, not only in the domain.

Each generated batch goes the way a worker takes it: the engine governs the messages,
and :class:`~ecoshare.governance.observer.WorkerObserver` applies the state in force and
the batch's counts to :class:`~ecoshare.adapters.metrics.GovernanceMetrics`. Then, read
back from the registry:

- per subscriber and event type, received = delivered + withheld + quarantined, and a
  candidate subscriber receives every message of the batch;
- per event type, received = admitted + quarantined = the messages sent;
- the deliveries counted are the deliveries produced, and no delivered record holds a
  value the reference policy withholds (not granted, or personal without consent).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ecoshare.adapters.metrics import GovernanceMetrics
from ecoshare.domain.partners import Role
from ecoshare.domain.policy import Decision, evaluate_event
from ecoshare.domain.timestamps import to_epoch_millis
from ecoshare.governance.observer import WorkerObserver
from tests.strategies import Scenario, event_records, governance_scenarios
from tests.unit.governed import NAMES, RecordingRegistry, encode_event, make_engine, signed_message

EVENT_TYPES = ("LocationAvailability", "StoreStatusChanged")


def _batch(draw: st.DrawFn) -> tuple[Scenario, list[dict[str, Any]]]:
    scenario = draw(governance_scenarios())
    extra = draw(st.lists(event_records(scenario.event_type), max_size=3))
    records = [scenario.record]
    for number, record in enumerate(extra, start=1):
        # Distinct event ids: a repeated id is a duplicate, quarantined by design.
        records.append({**record, "event_id": str(uuid.UUID(int=number))})
    return scenario, records


batches = st.composite(_batch)


def _sample(registry: CollectorRegistry, family: str, labels: dict[str, str]) -> float:
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name != family:
                continue
            if all(sample.labels.get(name) == value for name, value in labels.items()):
                total += sample.value
    return total


def _reference(scenario: Scenario, record: dict[str, Any]) -> list[Decision] | None:
    """The reference decisions for an admitted event; None when admission refuses it."""
    publisher = scenario.state.partner(record["publisher_id"])
    if publisher is None or not publisher.enabled or Role.PUBLISHER not in publisher.roles:
        return None
    return evaluate_event(
        record,
        scenario.event_type,
        record["publisher_id"],
        scenario.state,
        scenario.classification,
        scenario.now,
        scenario.hash_keys,
    )


@settings(max_examples=60, deadline=None)
@given(batches())
def test_metrics_balance_and_deliveries_hold_only_allowed_fields(
    batch: tuple[Scenario, list[dict[str, Any]]],
) -> None:
    scenario, records = batch
    event_type = scenario.event_type
    recording = RecordingRegistry()
    engine = make_engine(recording)
    messages = []
    for offset, record in enumerate(records):
        partner = scenario.state.partner(record["publisher_id"])
        messages.append(
            signed_message(
                event_type,
                encode_event(event_type, record),
                record["publisher_id"],
                key_generation=partner.key_generation if partner else 1,
                offset=offset,
            )
        )
    result = engine.govern(messages, scenario.state, scenario.now, to_epoch_millis(scenario.now))

    registry = CollectorRegistry()
    observer = WorkerObserver(
        GovernanceMetrics(registry),
        names=NAMES,
        event_types=EVENT_TYPES,
        ingress_partitions=4,
        clock=lambda: scenario.now.timestamp(),
    )
    observer.state_in_force(scenario.state)
    observer.batch_completed(result.counts, len(messages), 0.001, scenario.now.timestamp())

    sent = len(messages)
    of_type = {"event_type": event_type}
    assert _sample(registry, "ecoshare_events_received_total", of_type) == sent
    assert (
        _sample(registry, "ecoshare_events_admitted_total", of_type)
        + _sample(registry, "ecoshare_events_quarantined_total", of_type)
        == sent
    )
    candidates = scenario.state.candidate_subscribers(event_type)
    for subscriber in candidates:
        labels = {"subscriber": subscriber, "event_type": event_type}
        received = _sample(registry, "ecoshare_subscriber_events_received_total", labels)
        assert received == sent
        assert received == (
            _sample(registry, "ecoshare_events_delivered_total", labels)
            + _sample(registry, "ecoshare_events_withheld_total", labels)
            + _sample(registry, "ecoshare_subscriber_events_quarantined_total", labels)
        )

    deliveries = [
        output for output in result.outputs if output.topic.startswith(NAMES.prefix + "deliver.")
    ]
    assert _sample(registry, "ecoshare_events_delivered_total", of_type) == len(deliveries)

    # The k-th delivery on a subscriber's topic is the k-th event the reference delivers
    # to that subscriber; it may hold only what the reference lets through.
    allowed: dict[str, list[Decision]] = {}
    for record in records:
        for decision in _reference(scenario, record) or ():
            if decision.delivered:
                topic = NAMES.delivery(decision.subscriber_id, event_type)
                allowed.setdefault(topic, []).append(decision)
    taken: Counter[str] = Counter()
    for output in deliveries:
        decision = allowed[output.topic][taken[output.topic]]
        taken[output.topic] += 1
        delivered = recording.decode(output.value)
        # The subscriber's schema declares every granted field; one withheld is null.
        assert {name for name, value in delivered.items() if value is not None} <= set(
            decision.fields_delivered
        )
        assert delivered == decision.record
        for name in decision.personal_fields_without_consent:
            assert delivered.get(name) is None, f"{name} reached {decision.subscriber_id}"
    assert taken == Counter({topic: len(found) for topic, found in allowed.items()})
