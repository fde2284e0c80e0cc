"""Audit messages become health observations that agree with ``decode_audit_block``."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecoshare.codec.audit_blocks import (
    AuditFormatError,
    DecisionRecord,
    QuarantineRecord,
    decode_audit_block,
)
from ecoshare.health import AcceptedEvent, DecisionTally, audit_observations

AT_MS = 1_774_252_800_000


def block(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "source": "ingress.StoreStatusChanged:0",
        "event_type": "StoreStatusChanged",
        "state_version": "s1",
        "at_ms": AT_MS,
        "candidates": ["carrier-north", "city-app"],
        "templates": [
            {
                "subscriber": "carrier-north",
                "outcome": "delivered",
                "reason": None,
                "agreement_id": "agr-1",
                "agreement_version": 2,
            },
            {
                "subscriber": "city-app",
                "outcome": "withheld",
                "reason": "row-filter",
                "agreement_id": "agr-2",
                "agreement_version": 1,
            },
        ],
        "events": [
            [10, "ev-1", "shop-a", "loc-1", AT_MS - 500, [0, ["consent-1"]], [1]],
            [11, "ev-2", "shop-a", "loc-2", AT_MS - 450, [0], [1]],
            # A publisher nobody subscribes to: a row without decisions.
            [12, "ev-3", "shop-b", "loc-9", AT_MS - 400],
        ],
        "quarantined": [[13, None, "schema-invalid", "not Avro", "shop-a"]],
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_every_row_is_an_accepted_event_and_decisions_are_tallied_per_template() -> None:
    observations = audit_observations(block())

    assert [item for item in observations if isinstance(item, AcceptedEvent)] == [
        AcceptedEvent("ev-1", "StoreStatusChanged", "shop-a", "loc-1", AT_MS - 500, AT_MS),
        AcceptedEvent("ev-2", "StoreStatusChanged", "shop-a", "loc-2", AT_MS - 450, AT_MS),
        AcceptedEvent("ev-3", "StoreStatusChanged", "shop-b", "loc-9", AT_MS - 400, AT_MS),
    ]
    assert [item for item in observations if isinstance(item, DecisionTally)] == [
        DecisionTally("StoreStatusChanged", "carrier-north", "delivered", None, "agr-1", AT_MS, 2),
        DecisionTally(
            "StoreStatusChanged", "city-app", "withheld", "row-filter", "agr-2", AT_MS, 2
        ),
    ]
    refusals = [item for item in observations if isinstance(item, QuarantineRecord)]
    assert refusals == [
        item for item in decode_audit_block(block()) if isinstance(item, QuarantineRecord)
    ]


@pytest.mark.parametrize("value", [b"", None])
def test_a_position_marker_holds_nothing(value: bytes | None) -> None:
    assert audit_observations(value) == []


@pytest.mark.parametrize(
    "value",
    [b"{not json", b"[]", block(events=[[1, "ev"]]), block(events=[[1, "e", "p", "l", 0, [5]]])],
)
def test_anything_else_is_an_audit_format_error(value: bytes) -> None:
    with pytest.raises(AuditFormatError):
        audit_observations(value)


_templates = st.lists(
    st.fixed_dictionaries(
        {
            "subscriber": st.sampled_from(["carrier-north", "carrier-south", "city-app"]),
            "outcome": st.sampled_from(["delivered", "withheld"]),
            "reason": st.sampled_from([None, "row-filter", "no-agreement"]),
            "agreement_id": st.sampled_from([None, "agr-1", "agr-2"]),
            "agreement_version": st.sampled_from([None, 1, 2]),
        }
    ),
    min_size=1,
    max_size=6,
)


@st.composite
def audit_blocks(draw: st.DrawFn) -> dict[str, Any]:
    templates = draw(_templates)
    entry = st.tuples(
        st.integers(0, len(templates) - 1), st.lists(st.just("consent-1"), max_size=1)
    ).map(lambda pair: [pair[0], pair[1]] if pair[1] else [pair[0]])
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["shop-a", "shop-b"]),
                st.sampled_from(["loc-1", "loc-2", "loc-3"]),
                st.integers(0, AT_MS),
                st.lists(entry, max_size=4),
            ),
            max_size=12,
        )
    )
    refused = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["schema-invalid", "duplicate"]), st.sampled_from([None, "shop-a"])
            ),
            max_size=3,
        )
    )
    return {
        "source": "ingress.LocationAvailability:3",
        "event_type": "LocationAvailability",
        "state_version": "s",
        "at_ms": AT_MS,
        "candidates": sorted({template["subscriber"] for template in templates}),
        "templates": templates,
        "events": [
            [offset, f"ev-{offset}", publisher, location, published, *entries]
            for offset, (publisher, location, published, entries) in enumerate(rows)
        ],
        "quarantined": [
            [100 + offset, None, reason, "detail", publisher]
            for offset, (reason, publisher) in enumerate(refused)
        ],
    }


@given(audit_blocks())
def test_tallies_add_up_to_the_decisions_decode_audit_block_yields(body: dict[str, Any]) -> None:
    value = json.dumps(body).encode()
    observations = audit_observations(value)
    records = list(decode_audit_block(value))

    def key(item: DecisionRecord | DecisionTally) -> tuple[Any, ...]:
        return (
            item.subscriber_id,
            item.outcome,
            item.reason,
            item.agreement_id,
            item.decided_at_ms,
        )

    tallied: Counter[tuple[Any, ...]] = Counter()
    for item in observations:
        if isinstance(item, DecisionTally):
            tallied[key(item)] += item.decisions
    decoded = Counter(key(item) for item in records if isinstance(item, DecisionRecord))
    assert tallied == decoded
    assert [
        (item.event_id, item.publisher_id, item.location_id, item.published_ms)
        for item in observations
        if isinstance(item, AcceptedEvent)
    ] == [(row[1], row[2], row[3], row[4]) for row in body["events"]]
    assert [item for item in observations if isinstance(item, QuarantineRecord)] == [
        item for item in records if isinstance(item, QuarantineRecord)
    ]
