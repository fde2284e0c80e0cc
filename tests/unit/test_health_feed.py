"""Audit messages become health observations: one accepted event per row, then decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecoshare.audit import AuditFormatError, DecisionRecord, QuarantineRecord
from ecoshare.health import AcceptedEvent, audit_observations

AT_MS = 1_774_252_800_000


def block(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "source": "ingress.StoreStatusChanged:0",
        "event_type": "StoreStatusChanged",
        "state_version": "s1",
        "at_ms": AT_MS,
        "candidates": ["carrier-north"],
        "templates": [
            {
                "subscriber": "carrier-north",
                "outcome": "delivered",
                "reason": None,
                "agreement_id": "agr-1",
                "agreement_version": 2,
            },
        ],
        "events": [
            [10, "ev-1", "shop-a", "loc-1", AT_MS - 500, [0]],
            # A publisher nobody subscribes to: a row without decisions.
            [11, "ev-2", "shop-b", "loc-9", AT_MS - 400],
        ],
        "quarantined": [[12, None, "schema-invalid", "not Avro", "shop-a"]],
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_every_row_is_an_accepted_event_even_without_decisions() -> None:
    observations = audit_observations(block())

    accepted = [item for item in observations if isinstance(item, AcceptedEvent)]
    assert accepted == [
        AcceptedEvent("ev-1", "StoreStatusChanged", "shop-a", "loc-1", AT_MS - 500, AT_MS),
        AcceptedEvent("ev-2", "StoreStatusChanged", "shop-b", "loc-9", AT_MS - 400, AT_MS),
    ]
    decisions = [item for item in observations if isinstance(item, DecisionRecord)]
    assert [(d.event_id, d.subscriber_id, d.agreement_id) for d in decisions] == [
        ("ev-1", "carrier-north", "agr-1")
    ]
    refusals = [item for item in observations if isinstance(item, QuarantineRecord)]
    assert [(r.reason, r.publisher_id) for r in refusals] == [("schema-invalid", "shop-a")]


@pytest.mark.parametrize("value", [b"", None])
def test_a_position_marker_holds_nothing(value: bytes | None) -> None:
    assert audit_observations(value) == []


@pytest.mark.parametrize("value", [b"{not json", b"[]", block(events=[[1, "ev"]])])
def test_anything_else_is_an_audit_format_error(value: bytes) -> None:
    with pytest.raises(AuditFormatError):
        audit_observations(value)
