"""The demo's use-case adapters: writes go through the one control-record writer and
the state the next use case reads follows them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ecoshare.adapters.kafka.control_records import ControlRecordWriter, decode_value
from ecoshare.adapters.kafka.writer import AcknowledgedWriter
from ecoshare.application.consent import withdraw_consent
from ecoshare.application.governance import apply_governance, plan_governance
from ecoshare.config.topics import TopicNames
from ecoshare.demo.control import DemoControl
from ecoshare.domain.consent import ConsentRecord
from ecoshare.governance.control_plane import ControlKind
from tests.strategies import CATALOG
from tests.unit.application_fakes import START, FakeClock, agreement, partner
from tests.unit.fake_kafka_for_adapters import FakeProducer

SCHEMAS = CATALOG.event_schemas()


def _control(seed: dict[str, dict[str, Any]] | None = None) -> tuple[DemoControl, FakeProducer]:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config))
        return made[-1]

    names = TopicNames("demo.")
    writer = ControlRecordWriter(
        "fake:9092",
        {kind.value: kind.topic(names) for kind in ControlKind},
        writer=AcknowledgedWriter("fake:9092", producer_factory=factory),
    )
    return DemoControl(writer, seed or {}), made[0]


def test_applying_the_governance_file_writes_it_and_a_second_apply_writes_nothing() -> None:
    control, producer = _control()
    plan = plan_governance(
        [partner("shop"), partner("maps")], [agreement("a-1")], control, SCHEMAS, source="demo"
    )
    applied = apply_governance(plan, control, prune=False)
    assert len(applied.written) == 3
    assert set(control.partners()) == {"shop", "maps"}
    assert set(control.agreements()) == {"a-1"}
    names = TopicNames("demo.")
    topics = sorted(record["topic"] for record in producer.produced)
    assert topics == sorted([names.partners, names.partners, names.agreements])
    again = plan_governance(
        [partner("shop"), partner("maps")], [agreement("a-1")], control, SCHEMAS, source="demo"
    )
    assert again.empty
    assert apply_governance(again, control, prune=False).written == ()
    assert len(producer.produced) == 3


def test_the_demo_withdrawal_is_the_use_case_never_before_the_consent_was_given() -> None:
    given = START + timedelta(hours=1)  # given "in the future" by a skewed clock
    consent = ConsentRecord(
        consent_id="c-1",
        subject="owner-1",
        controller="shop",
        grantee="maps",
        purpose="delivery",
        scope=frozenset({"personal"}),
        given_at=given,
    )
    control, producer = _control({"consent": {"c-1": consent}})
    withdrawn = withdraw_consent("c-1", control, control, FakeClock())
    assert withdrawn.withdrawn_at == given
    assert control.consents()["c-1"] == withdrawn
    written = decode_value(producer.produced[-1]["value"])
    assert written is not None and written["consent_id"] == "c-1"
    assert written["withdrawn_at"] is not None
