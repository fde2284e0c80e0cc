"""The audit codec: what the encoder writes, the one decoder reads back unchanged.

Workers write audit blocks with :func:`encode_audit_block` (through the compiled core's
JSON writer when it runs, else ``json.dumps``); the audit index, the health feed and the
CLI read them with :func:`parse_audit_block`. For generated blocks the round trip is the
identity, both encoders write the same bytes, and the records a block expands to are
exactly its rows; anything else is refused as an :class:`AuditFormatError`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecoshare.codec.audit_blocks import (
    AuditBlock,
    AuditFormatError,
    DecisionRecord,
    QuarantineRecord,
    decode_audit_block,
    encode_audit_block,
    parse_audit_block,
)
from ecoshare.governance.cores import select_core

native = select_core("native")
assert native is not None, "the compiled core ecoshare._native is not built"

_names = st.text(min_size=1, max_size=12)
_maybe_name = st.none() | _names
_offsets = st.integers(0, 2**53)
_field_lists = st.lists(_names, max_size=4)


@st.composite
def _templates(draw: st.DrawFn) -> dict[str, Any]:
    template: dict[str, Any] = {
        "subscriber": draw(_names),
        "outcome": draw(st.sampled_from(["delivered", "withheld"])),
        "reason": draw(_maybe_name),
        "agreement_id": draw(_maybe_name),
        "agreement_version": draw(st.none() | st.integers(1, 99)),
    }
    if draw(st.booleans()):
        template["fields_delivered"] = draw(_field_lists)
        template["fields_dropped"] = draw(_field_lists)
        template["fields_transformed"] = draw(st.dictionaries(_names, _names, max_size=3))
        template["personal_fields_without_consent"] = draw(_field_lists)
    return template


@st.composite
def audit_blocks(draw: st.DrawFn) -> AuditBlock:
    templates = draw(st.lists(_templates(), max_size=6))
    entry = st.tuples(st.integers(0, max(len(templates) - 1, 0)), st.lists(_names, max_size=2)).map(
        lambda pair: [pair[0], pair[1]] if pair[1] else [pair[0]]
    )
    entries = st.lists(entry, max_size=4 if templates else 0)
    events = draw(
        st.lists(
            st.tuples(_offsets, _names, _names, _names, _offsets, entries),
            max_size=10,
        )
    )
    quarantined = draw(
        st.lists(
            st.tuples(_offsets, _maybe_name, _names, st.text(max_size=40), _maybe_name),
            max_size=4,
        )
    )
    return AuditBlock(
        source=draw(_names) + ":" + str(draw(st.integers(0, 63))),
        event_type=draw(_names),
        state_version=draw(st.text(max_size=16)),
        at_ms=draw(_offsets),
        candidates=tuple(draw(st.lists(_names, max_size=4))),
        templates=templates,
        events=[[*columns, *entries] for *columns, entries in events],
        quarantined=[list(row) for row in quarantined],
    )


@settings(max_examples=300)
@given(audit_blocks())
def test_a_block_reads_back_as_it_was_written_with_either_encoder(block: AuditBlock) -> None:
    written = encode_audit_block(block)
    assert encode_audit_block(block, native.audit_json) == written
    assert parse_audit_block(written) == block


@settings(max_examples=200)
@given(audit_blocks())
def test_a_block_expands_to_one_record_per_decision_entry_and_refusal(block: AuditBlock) -> None:
    records = list(decode_audit_block(encode_audit_block(block)))
    decisions = [record for record in records if isinstance(record, DecisionRecord)]
    refusals = [record for record in records if isinstance(record, QuarantineRecord)]
    expected = [(row, entry) for row in block.events for entry in row[5:]]
    assert len(decisions) == len(expected)
    for decision, (row, entry) in zip(decisions, expected, strict=True):
        template = block.templates[entry[0]]
        assert (decision.offset, decision.event_id, decision.publisher_id) == tuple(row[:3])
        assert (decision.location_id, decision.published_ms) == tuple(row[3:5])
        assert decision.subscriber_id == template["subscriber"]
        assert decision.outcome == template["outcome"]
        assert decision.reason == template["reason"]
        assert decision.consent_ids == tuple(entry[1] if len(entry) > 1 else ())
        assert decision.fields_delivered == tuple(template.get("fields_delivered", ()))
        assert (decision.source, decision.decided_at_ms) == (block.source, block.at_ms)
        assert decision.state_version == block.state_version
    assert [(r.offset, r.event_id, r.reason, r.detail, r.publisher_id) for r in refusals] == [
        tuple(row) for row in block.quarantined
    ]
    assert all(r.candidate_subscribers == block.candidates for r in refusals)
    assert [row.event_id for row in block.event_rows()] == [row[1] for row in block.events]


def test_a_position_marker_holds_no_decisions() -> None:
    assert list(decode_audit_block(b"")) == []
    assert list(decode_audit_block(None)) == []


def _body(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "source": "ingress.StoreStatusChanged:0",
        "event_type": "StoreStatusChanged",
        "state_version": "s1",
        "at_ms": 1000,
        "candidates": ["carrier"],
        "templates": [{"subscriber": "carrier", "outcome": "withheld", "reason": "row_filter"}],
        "events": [[1, "ev-1", "shop", "loc", 900, [0]]],
        "quarantined": [[2, None, "bad_framing", "magic byte 1", None]],
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_the_reference_body_parses() -> None:
    block = parse_audit_block(_body())
    assert block.events == [[1, "ev-1", "shop", "loc", 900, [0]]]
    assert [type(record) for record in decode_audit_block(_body())] == [
        DecisionRecord,
        QuarantineRecord,
    ]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (b"{not json", "not an audit block"),
        (b"[]", "JSON object"),
        (_body(source=None), "source must be a string"),
        (_body(at_ms="1000"), "at_ms must be an integer"),
        (_body(events={}), "events must be a list"),
        (_body(events=[[1, "ev-1", "shop", "loc"]]), "five columns"),
        (_body(events=[[True, "ev-1", "shop", "loc", 900]]), "offset must be an integer"),
        (_body(events=[[1, "ev-1", "shop", "loc", 900, [1]]]), "template 1 of 1"),
        (_body(events=[[1, "ev-1", "shop", "loc", 900, [0, "c-1"]]]), "consent ids"),
        (_body(events=[[1, "ev-1", "shop", "loc", 900, []]]), "decision entry"),
        (_body(templates=[{"outcome": "withheld"}]), "subscriber"),
        (_body(quarantined=[[2, None, "bad_framing"]]), "four or five columns"),
        (_body(quarantined=[[2, 7, "bad_framing", "d", None]]), "event_id must be a string"),
    ],
)
def test_anything_else_is_an_audit_format_error_that_says_why(value: bytes, complaint: str) -> None:
    with pytest.raises(AuditFormatError, match=complaint):
        parse_audit_block(value)
    with pytest.raises(AuditFormatError):
        list(decode_audit_block(value))
