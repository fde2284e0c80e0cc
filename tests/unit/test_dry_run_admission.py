"""Dry-run counts the sampled ingress events exactly as the workers' admission decides."""

from __future__ import annotations

import io
from collections import Counter
from datetime import timedelta
from typing import Any

import fastavro
import pytest

from ecoshare.cli.dry_run import (
    DryRunReport,
    EngineDecisions,
    SampledMessage,
    _EvaluationContext,
    admission_verdicts,
    replay_messages,
)
from ecoshare.domain.agreements import Agreement
from ecoshare.governance.partitioning import key_partition
from tests.strategies import CATALOG
from tests.unit.governed import (
    CORES,
    INGRESS_PARTITIONS,
    WRITER_IDS,
    IngressRecord,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_engine_admission import NOW, NOW_MS, TYPE, _event, _state

# Two locations whose keys live on different ingress partitions.
LOCATION_A = "sp-1"
LOCATION_B = next(
    f"sp-{n}"
    for n in range(2, 100)
    if key_partition(f"sp-{n}".encode(), INGRESS_PARTITIONS)
    != key_partition(LOCATION_A.encode(), INGRESS_PARTITIONS)
)


def _sampled(record: IngressRecord, timestamp_ms: int) -> SampledMessage:
    return SampledMessage(
        event_type=TYPE,
        partition=record.partition(),
        offset=record.offset(),
        timestamp_ms=timestamp_ms,
        value=record.value() or b"",
        headers=dict(record.headers()),
        key=record.key(),
        topic=record.topic(),
    )


def _decode(value: bytes) -> dict[str, Any]:
    event_type = next(t for t, i in WRITER_IDS.items() if i == int.from_bytes(value[1:5], "big"))
    parsed = CATALOG.parsed_schema(event_type)
    return dict(fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, None))  # type: ignore[call-overload]


def _sample() -> tuple[list[SampledMessage], dict[str, tuple[str, int, int]]]:
    """One sample with every case; returns the messages and the position of each case."""
    good = encode_event(TYPE, _event(1, location_id=LOCATION_A))
    cases: dict[str, IngressRecord] = {
        "first": signed_message(TYPE, good, "postnl", offset=0),
        # Same event id under another location: another partition, another event.
        "other_location": signed_message(
            TYPE, encode_event(TYPE, _event(1, location_id=LOCATION_B)), "postnl", offset=0
        ),
        "duplicate": signed_message(TYPE, good, "postnl", offset=1),
        "key_not_location": signed_message(
            TYPE,
            encode_event(TYPE, _event(2, location_id=LOCATION_A)),
            "postnl",
            offset=2,
            record_key=LOCATION_B.encode(),
        ),
        "wrong_partition": signed_message(
            TYPE,
            encode_event(TYPE, _event(3, location_id=LOCATION_B)),
            "postnl",
            offset=3,
            partition=key_partition(LOCATION_A.encode(), INGRESS_PARTITIONS),
        ),
        "trailing_bytes": signed_message(
            TYPE,
            encode_event(TYPE, _event(4, location_id=LOCATION_A)) + b"\x00",
            "postnl",
            offset=4,
            record_key=LOCATION_A.encode(),
        ),
        "truncated_payload": signed_message(
            TYPE,
            encode_event(TYPE, _event(5, location_id=LOCATION_A))[:-7],
            "postnl",
            offset=5,
            record_key=LOCATION_A.encode(),
        ),
    }
    messages = [_sampled(record, NOW_MS + index) for index, record in enumerate(cases.values())]
    positions = {name: message.position for name, message in zip(cases, messages, strict=True)}
    return messages, positions


@pytest.mark.parametrize("core", CORES)
def test_dry_run_refuses_what_admission_refuses_and_dedups_per_partition(core: str) -> None:
    messages, positions = _sample()
    engine = make_engine(RecordingRegistry(), core)
    verdicts = admission_verdicts(messages, engine, _state(), EngineDecisions(), NOW_MS)
    assert {name: verdicts[position] for name, position in positions.items()} == {
        "first": None,
        "other_location": None,
        "duplicate": "duplicate_event_id",
        "key_not_location": "key_not_location",
        "wrong_partition": "wrong_partition",
        "trailing_bytes": "trailing_bytes",
        "truncated_payload": "truncated_payload",
    }

    state = _state()
    proposal = Agreement(
        agreement_id="agr-2",
        version=1,
        publishers=frozenset({"postnl"}),
        subscriber="carrier",
        event_types=frozenset({TYPE}),
        purpose="parcel-delivery",
        valid_from=NOW - timedelta(days=1),
        fields={"event_id": "deliver", "status": "deliver"},
    )
    context = _EvaluationContext("carrier", CATALOG, NOW, {"carrier": b"k" * 32})
    report = replay_messages(
        DryRunReport(proposal, None), messages, verdicts, state, context, _decode
    )
    assert report.now.delivered == 2
    assert report.proposed.delivered == 2
    assert report.skipped == Counter(
        {
            "duplicate_event_id": 1,
            "key_not_location": 1,
            "wrong_partition": 1,
            "trailing_bytes": 1,
            "truncated_payload": 1,
        }
    )


def test_the_workers_recorded_decisions_win_and_feed_the_duplicate_window() -> None:
    messages, positions = _sample()
    engine = make_engine(RecordingRegistry(), "python")
    decided = EngineDecisions(
        quarantined={positions["other_location"]: "oversize_event"},
        admitted={positions["first"]: "00000000-0000-4000-8000-000000000001"},
    )
    # The admitted one would be a duplicate if the window had seen it twice.
    verdicts = admission_verdicts(messages, engine, _state(), decided, NOW_MS)
    assert verdicts[positions["first"]] is None
    assert verdicts[positions["other_location"]] == "oversize_event"
    assert verdicts[positions["duplicate"]] == "duplicate_event_id"
