"""The files the README's walk-through uses are valid as they are shipped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecoshare.catalog.event_catalog import load_catalog
from ecoshare.cli.dry_run import load_proposal
from ecoshare.codec.event_json import fill_envelope, record_from_json
from ecoshare.config.settings import Settings
from ecoshare.domain.formats import conform

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Settings().schemas_dir
CATALOG = load_catalog(SCHEMAS)
NOW = datetime(2020, 3, 16, 9, tzinfo=UTC)


def _problems(event_type: str, event: dict[str, object], publisher: str) -> list[str]:
    schema = CATALOG.event_schema(event_type)
    record, problems = record_from_json(schema, fill_envelope(event, publisher, NOW))
    found = [f"{problem.field}: {problem.message}" for problem in problems]
    if record is not None:
        found += [f"{path}: {message}" for path, message in conform(schema, record)[1]]
    return found


def test_the_walkthrough_events_file_is_valid_json_lines() -> None:
    lines = (ROOT / "examples" / "events" / "store-status.jsonl").read_text().splitlines()
    assert len(lines) == 3
    events = [json.loads(line) for line in lines]
    for event in events:
        assert _problems("StoreStatusChanged", event, "postnl") == []
    # Both timestamp forms the README documents appear in the file.
    assert any(isinstance(event["effective_from"], int) for event in events)
    assert any(isinstance(event["effective_from"], str) for event in events)


@pytest.mark.parametrize("event_type", CATALOG.event_types)
def test_every_catalog_example_is_a_valid_event(event_type: str) -> None:
    example = CATALOG.example(event_type)
    assert example is not None
    assert _problems(event_type, example, str(example["publisher_id"])) == []
    assert list(example) == [field["name"] for field in CATALOG.event_schema(event_type)["fields"]]


def test_the_walkthrough_proposal_is_one_valid_agreement() -> None:
    proposal = load_proposal(ROOT / "examples" / "postnl" / "proposal.yaml", SCHEMAS)
    assert proposal.agreement_id == "status-to-carrier-north"
    assert proposal.version == 2
