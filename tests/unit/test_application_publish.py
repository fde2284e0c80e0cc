"""The publish use case: all events checked before any is produced; named refusals."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from ecoshare.application.errors import PublisherNotAllowedError, UnknownEventTypeError
from ecoshare.application.publish import (
    InvalidEventsError,
    check_event_type,
    publish_json_events,
    publishing_partner,
)
from ecoshare.sdk import EventTooLargeError, PublishError
from tests.strategies import CATALOG, REPO_ROOT
from tests.unit.application_fakes import START, FakeClock, FakeProducer, InMemoryPlatform, partner

EVENT_TYPE = "StoreStatusChanged"
SCHEMA = CATALOG.event_schema(EVENT_TYPE)
EVENTS = [
    json.loads(line)
    for line in (REPO_ROOT / "examples" / "events" / "store-status.jsonl").read_text().splitlines()
    if line.strip()
]


def _encode_small(event: Mapping[str, Any], event_type: str) -> tuple[bytes, bytes]:
    if event.get("location_name") == "huge":
        raise EventTooLargeError(event_type, 70_000, 65_536)
    return str(event["location_id"]).encode(), json.dumps(dict(event), default=str).encode()


def _producer(**changes: Any) -> FakeProducer:
    return FakeProducer(partner_id="shop", encode_event=_encode_small, **changes)


def _labelled(events: list[Any]) -> list[tuple[str, Any]]:
    return [(f"[{index}]", event) for index, event in enumerate(events)]


def test_every_event_is_produced_with_its_envelope_filled_in() -> None:
    producer = _producer()
    event = {key: value for key, value in EVENTS[0].items() if key != "event_id"}
    event_ids = publish_json_events(
        producer, SCHEMA, EVENT_TYPE, _labelled([event, EVENTS[1]]), clock=FakeClock()
    )
    assert len(event_ids) == 2
    assert event_ids[1] == EVENTS[1]["event_id"]
    assert [key for _, key, _ in producer.produced] == [
        EVENTS[0]["location_id"].encode(),
        EVENTS[1]["location_id"].encode(),
    ]
    first = json.loads(producer.produced[0][2])
    assert first["publisher_id"] == "shop"
    assert first["event_id"] == event_ids[0]
    assert first["published_at"] == str(START)
    assert producer.flushed == [30.0]


def test_one_bad_event_refuses_the_batch_and_nothing_is_produced() -> None:
    producer = _producer()
    bad = {**EVENTS[1], "latitude": "north"}
    with pytest.raises(InvalidEventsError) as refused:
        publish_json_events(producer, SCHEMA, EVENT_TYPE, _labelled([EVENTS[0], bad, "text"]))
    fields = [problem.field for problem in refused.value.problems]
    assert fields == ["[1].latitude", "[2]"]
    assert refused.value.oversize == []
    assert producer.produced == []
    assert producer.flushed == []


def test_an_oversize_event_is_named_apart() -> None:
    producer = _producer()
    huge = {**EVENTS[0], "location_name": "huge"}
    with pytest.raises(InvalidEventsError) as refused:
        publish_json_events(producer, SCHEMA, EVENT_TYPE, _labelled([huge, EVENTS[1]]))
    assert [problem.field for problem in refused.value.oversize] == ["[0]"]
    assert producer.produced == []


def test_an_event_claiming_another_publisher_is_refused() -> None:
    producer = _producer()
    with pytest.raises(InvalidEventsError) as refused:
        publish_json_events(
            producer, SCHEMA, EVENT_TYPE, [("line 1", {**EVENTS[0], "publisher_id": "bakery"})]
        )
    assert [problem.field for problem in refused.value.problems] == ["line 1.publisher_id"]


def test_unacknowledged_events_raise_publish_error() -> None:
    producer = _producer(fail_flush=PublishError("1 events not acknowledged within 10s"))
    with pytest.raises(PublishError):
        publish_json_events(
            producer, SCHEMA, EVENT_TYPE, _labelled(EVENTS[:1]), flush_timeout_seconds=10
        )
    assert producer.flushed == [10]


def test_on_written_learns_where_each_event_was_written() -> None:
    producer = _producer()
    written: dict[str, list[str]] = {}

    def recorder(event_id: str) -> Any:
        return lambda topic, partition, offset: written.setdefault(event_id, []).append(
            f"{topic}:{partition}@{offset}"
        )

    event_ids = publish_json_events(
        producer, SCHEMA, EVENT_TYPE, _labelled(EVENTS[:2]), on_written=recorder
    )
    assert written == {
        event_ids[0]: [f"ingress.{EVENT_TYPE}:0@0"],
        event_ids[1]: [f"ingress.{EVENT_TYPE}:0@1"],
    }


def test_only_an_enabled_publisher_may_publish() -> None:
    platform = InMemoryPlatform().seed(
        partner("shop", "publisher"),
        partner("maps", "subscriber"),
        partner("closed", "publisher", enabled=False),
    )
    assert publishing_partner("shop", platform).partner_id == "shop"
    for partner_id, known in (("maps", True), ("closed", True), ("ghost", False)):
        with pytest.raises(PublisherNotAllowedError) as refused:
            publishing_partner(partner_id, platform)
        assert refused.value.known is known


def test_an_unknown_event_type_names_the_known_ones() -> None:
    check_event_type(EVENT_TYPE, CATALOG.event_types)
    with pytest.raises(
        UnknownEventTypeError, match=r"^unknown event type 'Nope'; known: .*StoreStatusChanged"
    ):
        check_event_type("Nope", CATALOG.event_types)
