"""The compiled batch kernel governs exactly as the Python core, batch for batch.

With the native core, :meth:`GovernanceEngine.govern` hands each batch to the kernel
(``ecoshare._native.govern_batch``), which takes the common case natively and leaves
every other event to the Python path in place. For generated states and batches mixing
admitted, refused (unsigned, forged, unknown publisher, empty, undecodable, wrong
partition, key not the location), duplicate, rate-limited, consent-needing and
row-filtered events, over several partitions, event types and consecutive batches, the
kernel's :class:`BatchResult` (every output with its bytes and headers, each
partition's bookkeeping, the counts, the decision templates) must equal the Python
core's, and so must the duplicate windows afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ecoshare.domain.agreements import Limits, RowFilter
from ecoshare.domain.identity import PUBLISHER_HEADER, SIGNATURE_HEADER, partner_signing_key
from ecoshare.domain.identity import sign_event as sign
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.state import GovernanceState
from ecoshare.domain.timestamps import to_epoch_millis
from ecoshare.governance.admission import WriterSchema
from ecoshare.governance.engine import GovernanceEngine
from ecoshare.governance.kernel import ConsentMemo, KernelRun
from ecoshare.governance.partitioning import key_partition
from ecoshare.governance.plan import compile_plan
from ecoshare.governance.routing import consented_fields
from tests.strategies import (
    DAY_MILLIS,
    EVENT_TYPES,
    PLATFORM_SECRET,
    Scenario,
    event_records,
    governance_scenarios,
)
from tests.unit.governed import (
    INGRESS_PARTITIONS,
    IngressRecord,
    RecordingRegistry,
    encode_event,
    make_engine,
    signed_message,
)
from tests.unit.test_engine_admission import NOW, NOW_MS, TYPE, _event
from tests.unit.test_engine_admission import _state as _admission_state
from tests.unit.test_engine_equivalence import BatchScenario, _messages, governed_batches

SPOILERS = (
    "unsigned",
    "forged",
    "unknown_publisher",
    "empty",
    "undecodable",
    "trailing",
    "wrong_partition",
    "key_not_location",
    "bad_framing",
)


def _resigned(message: IngressRecord, value: bytes | None = None, **changes: Any) -> None:
    """``message`` with a new value (or key), signed again by its publisher."""
    if value is not None:
        message.value_bytes = value
    for name, change in changes.items():
        setattr(message, name, change)
    publisher = dict(message.header_list)[PUBLISHER_HEADER].decode()
    key = partner_signing_key(PLATFORM_SECRET, publisher, 1)
    event_type = message.topic_name.rsplit(".", 1)[-1]
    message.header_list = [
        (PUBLISHER_HEADER, publisher.encode()),
        (SIGNATURE_HEADER, sign(key, event_type, message.key_bytes, message.value_bytes or b"")),
    ]


def _spoil(message: IngressRecord, how: str) -> None:
    """Make ``message`` one that admission refuses, as ``how`` says."""
    value = message.value_bytes or b""
    if how == "unsigned":
        message.header_list = message.header_list[:1]
    elif how == "forged":
        message.value_bytes = value[:-1] + bytes([value[-1] ^ 1])
    elif how == "unknown_publisher":
        message.header_list = [(PUBLISHER_HEADER, b"nobody"), *message.header_list[1:]]
    elif how == "empty":
        message.value_bytes = b""
    elif how == "undecodable":
        _resigned(message, value[:9])
    elif how == "trailing":
        _resigned(message, value + b"\x00")
    elif how == "bad_framing":
        _resigned(message, b"\x01" + value[1:])
    elif how == "wrong_partition":
        message.partition_number = (message.partition_number + 1) % INGRESS_PARTITIONS
    elif how == "key_not_location":
        key = b"elsewhere"
        _resigned(message, partition_number=key_partition(key, INGRESS_PARTITIONS), key_bytes=key)


def _offsets_renumbered(messages: list[IngressRecord], first: dict[tuple[str, int], int]) -> None:
    """Offsets counted per partition as a broker would, continuing from ``first``."""
    for message in messages:
        position = (message.topic_name, message.partition_number)
        message.offset_number = first.get(position, 0)
        first[position] = message.offset_number + 1


@st.composite
def limited_batches(draw: st.DrawFn) -> BatchScenario:
    """As :func:`governed_batches`, the state's agreements rate-limited."""
    base = draw(governance_scenarios(with_limits=True))
    events = [(base.event_type, base.record)]
    for _ in range(draw(st.integers(0, 5))):
        event_type = draw(st.sampled_from(EVENT_TYPES))
        events.append((event_type, draw(event_records(event_type))))
    return BatchScenario(base, tuple(events))


@st.composite
def spoilt_batches(draw: st.DrawFn) -> tuple[BatchScenario, list[list[IngressRecord]], bool]:
    """A governed batch (duplicates, rate limits, consents, row filters), some of its
    messages spoilt, split into one to three consecutive batches; and whether a body
    fails its scan (whose refusal detail each scanner words its own way)."""
    # Rate limits in every other state: with few events they bite only when drawn.
    batch = draw(governed_batches() | limited_batches())
    # More events of the same publishers and locations under new ids: rate limits bite.
    again = [
        (event_type, {**record, "event_id": f"00000000-0000-4000-8000-{number:012d}"})
        for number, (event_type, record) in enumerate(
            draw(st.lists(st.sampled_from(batch.events), max_size=10))
        )
    ]
    batch = replace(batch, events=(*batch.events, *again))
    messages = _messages(batch)
    scan_refused = False
    for message in messages:
        if draw(st.integers(0, 3)) == 0:
            how = draw(st.sampled_from(SPOILERS))
            _spoil(message, how)
            scan_refused = scan_refused or how in ("undecodable", "trailing")
            event(f"spoilt: {how}")
    if draw(st.booleans()):  # a copy of an admitted event in a later batch
        copy = messages[draw(st.integers(0, len(messages) - 1))]
        messages.append(IngressRecord(**vars(copy)))
    _offsets_renumbered(messages, {})
    cuts = sorted(draw(st.lists(st.integers(0, len(messages)), max_size=2)))
    bounds = [0, *cuts, len(messages)]
    batches = [messages[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
    return batch, batches, scan_refused


def _windows_equal(kernel: GovernanceEngine, python: GovernanceEngine, ids: set[str]) -> None:
    for topic, partition in {(t, p) for t in _TOPICS for p in range(INGRESS_PARTITIONS)}:
        native_window = kernel.window(topic, partition)
        python_window = python.window(topic, partition)
        assert len(native_window) == len(python_window)
        assert {i for i in ids if i in native_window} == {i for i in ids if i in python_window}


_TOPICS = [f"unit.ingress.{name}" for name in ("StoreStatusChanged", "LocationAvailability")]


@settings(max_examples=300, deadline=None)
@given(spoilt_batches())
def test_the_kernel_governs_exactly_as_the_python_path(
    case: tuple[BatchScenario, list[list[IngressRecord]], bool],
) -> None:
    batch, batches, scan_refused = case
    state, now = batch.base.state, batch.base.now
    kernel = make_engine(RecordingRegistry(), "native")
    assert kernel.batch_kernel, "the native core governs batches with its kernel"
    # The native core event by event (its scanner's refusal details), and the Python core.
    per_event = make_engine(RecordingRegistry(), "native")
    per_event.batch_kernel = False
    python = make_engine(RecordingRegistry(), "python")
    now_ms = to_epoch_millis(now)
    ids: set[str] = set()
    for number, messages in enumerate(batches):
        at = now + timedelta(milliseconds=number)
        result = kernel.govern(messages, state, at, now_ms + number)
        expected = per_event.govern(messages, state, at, now_ms + number)
        assert result.outputs == expected.outputs
        assert result.partitions == expected.partitions
        assert result.counts == expected.counts
        assert result.templates == expected.templates
        assert result == expected
        if not scan_refused:
            assert result == python.govern(messages, state, at, now_ms + number)
        ids.update(i for b in result.partitions.values() for i in b.new_event_ids)
        for (_, _, reason), _count in result.counts.withheld.items():
            event(f"withheld: {reason}")
        if result.counts.delivered:
            event("delivered")
        if any(
            len(entry) > 1
            for b in result.partitions.values()
            for row in b.audit_events
            for entry in row[5:]
        ):
            event("delivered with consent ids")
    _windows_equal(kernel, per_event, ids)
    if not scan_refused:
        _windows_equal(kernel, python, ids)


def _clean_batch() -> tuple[GovernanceState, list[IngressRecord]]:
    from tests.unit.test_admission_verdicts import _two_partitions_two_types

    return _admission_state(), _two_partitions_two_types()


def test_the_kernel_takes_the_common_case_and_leaves_refusals_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Admitted events never reach the Python path; the duplicate does, in place."""
    handed: list[int] = []
    original = KernelRun.govern_event

    def counted(run: KernelRun, message: Any) -> None:
        handed.append(message.offset())
        original(run, message)

    monkeypatch.setattr(KernelRun, "govern_event", counted)
    state, messages = _clean_batch()
    engine = make_engine(RecordingRegistry(), "native")
    result = engine.govern(messages, state, NOW, NOW_MS)
    python = make_engine(RecordingRegistry(), "python").govern(messages, state, NOW, NOW_MS)
    assert result == python
    assert handed == [1]  # the copy of offset 0, re-read on offset 1: a duplicate
    assert result.counts.quarantined == {(TYPE, "duplicate_event_id"): 1}


def test_a_partition_under_recovery_goes_the_python_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs already written before a crash are skipped by the Python path alone."""
    handed: list[int] = []
    original = KernelRun.govern_event
    monkeypatch.setattr(
        KernelRun,
        "govern_event",
        lambda run, message: (handed.append(message.offset()), original(run, message))[1],
    )
    state = _admission_state()
    message = signed_message(TYPE, encode_event(TYPE, _record()), "postnl")
    results = []
    for core in ("native", "python"):
        engine = make_engine(RecordingRegistry(), core)
        source = (message.topic(), message.partition())
        engine.adopt_partition(*source, engine.new_window(), {"unit.audit": {0}})
        results.append(engine.govern([message], state, NOW, NOW_MS))
    assert results[0] == results[1]
    assert handed == [0]
    assert all(output.topic != "unit.audit" for output in results[0].outputs)


def _record() -> dict[str, Any]:
    return _event(1)


@settings(max_examples=200, deadline=None)
@given(governance_scenarios(), st.lists(st.integers(-3 * DAY_MILLIS, 3 * DAY_MILLIS), max_size=8))
def test_remembered_consent_answers_equal_fresh_ones(
    scenario: Scenario, moments: list[int]
) -> None:
    """Across moments on either side of consent boundaries, and a changed state, the
    memo answers exactly what :func:`consented_fields` computes afresh."""
    memo = ConsentMemo()
    subject = scenario.record["contact_subject_id"] or "subject-none"
    plans = [
        compile_plan(
            WriterSchema.compile(1, scenario.event_type, scenario.event_schema).layout,
            scenario.event_schema,
            agreement,
            scenario.classification,
            b"k" * 32,
        )
        for agreement in scenario.state.agreements.values()
        if scenario.event_type in agreement.event_types
    ]
    boundaries = [
        moment
        for consent in scenario.state.consents
        for moment in (consent.given_at, consent.expires_at, consent.withdrawn_at)
        if moment is not None
    ]
    instants = [scenario.now + timedelta(milliseconds=ms) for ms in moments] + boundaries
    for state in (scenario.state, GovernanceState([], [], [])):
        for at in instants:
            for plan in plans:
                if not plan.personal_fields:
                    continue
                args = (state, plan, subject, scenario.publisher_id, plan.agreement.subscriber)
                assert memo.consented_fields(*args, at) == consented_fields(*args, at)


def test_rate_limits_consent_and_row_filters_mixed_in_one_batch() -> None:
    """Rate-limited agreements go the Python way (their tokens are Python's), consented
    deliveries and row-filtered events the kernel's; the batch equals the Python one."""
    state = _admission_state()
    limited = state.agreements["agr-1"].model_copy(
        update={"limits": Limits(max_events_per_minute=2)}
    )
    filtered = limited.model_copy(
        update={
            "agreement_id": "agr-filtered",
            "subscriber": "filtered",
            "limits": None,
            "row_filters": (RowFilter(field="status", op="in", values=["CLOSED"]),),
        }
    )
    state = (
        state.with_agreement(limited)
        .with_partner(
            Partner(partner_id="filtered", name="Filtered", roles=frozenset({Role.SUBSCRIBER}))
        )
        .with_agreement(filtered)
    )
    records = [
        _event(
            n,
            contact_subject_id="owner-1" if n % 2 else None,
            status="OPEN" if n % 3 == 0 else "CLOSED",
        )
        for n in range(1, 7)
    ]
    messages = [signed_message(TYPE, encode_event(TYPE, r), "postnl") for r in records]
    _offsets_renumbered(messages, {})
    kernel = make_engine(RecordingRegistry(), "native")
    python = make_engine(RecordingRegistry(), "python")
    result = kernel.govern(messages, state, NOW, NOW_MS)
    assert result == python.govern(messages, state, NOW, NOW_MS)
    withheld = result.counts.withheld
    assert withheld[("carrier", TYPE, "rate_limited")] == 4
    assert withheld[("filtered", TYPE, "row_filter")] == 2
    assert result.counts.delivered == {("carrier", TYPE): 2, ("filtered", TYPE): 4}
    rows = [row for b in result.partitions.values() for row in b.audit_events]
    assert any(len(entry) == 2 and entry[1] == ["c-1"] for row in rows for entry in row[5:])
