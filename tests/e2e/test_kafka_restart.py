"""`ecoshare up --broker kafka` stopped and started again on the same data directory."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_platform, stop_platform, wait_until
from tests.e2e.test_cli import EXAMPLE, EXAMPLE_AGREEMENTS, status_event

pytestmark = pytest.mark.slow  # `ecoshare up --broker kafka` started twice

OWNER = "franchise-owner-7"


@pytest.mark.brokers("kafka")
def test_a_restart_on_the_same_data_dir_finds_everything_again(
    tmp_path: Path, broker_kind: str
) -> None:
    env = {"ECOSHARE_DATA_DIR": str(tmp_path / "kafka-data")}
    state_dir = tmp_path / "state"
    first = start_platform(state_dir, broker_kind, env)
    try:
        assert first.sh(f"apply -f {EXAMPLE}").code == 0
        granted = first.sh(
            f"consent grant --subject {OWNER} --controller franchise-shops "
            "--grantee carrier-north --purpose parcel-delivery --scope personal --id c-1"
        )
        assert granted.code == 0, granted.stderr
        event_ids = [str(uuid.uuid4()) for _ in range(3)]
        lines = "".join(
            json.dumps(status_event(event_id, f"hw-{n:04d}")) + "\n"
            for n, event_id in enumerate(event_ids)
        )
        sent = first.sh("publish StoreStatusChanged -f - --as franchise-shops", stdin=lines)
        assert sent.code == 0, sent.stderr
        # Governed (audited) before the stop; nobody has read the deliveries yet.
        for event_id in event_ids:

            def audited(event_id: str = event_id) -> bool:
                result = first.sh(f"audit {event_id} -o json")
                return result.code == 0 and bool(result.json())

            wait_until(audited, f"the audit of {event_id}", timeout=60)
        subjects_before = httpx.get(f"{first.registry_url}/subjects", timeout=10).json()
    finally:
        stop_platform(first)
    assert first.process.returncode == 0

    second = start_platform(state_dir, broker_kind, env)
    try:
        partners = second.sh("partners list -o json").json()
        assert len(partners) == 6
        agreements = second.sh("agreements list -o json").json()
        assert {item["agreement_id"] for item in agreements} == EXAMPLE_AGREEMENTS
        consents = second.sh(f"consent list --subject {OWNER} -o json").json()
        assert [(c["consent_id"], c["active"]) for c in consents] == [("c-1", True)]
        subjects_after = httpx.get(f"{second.registry_url}/subjects", timeout=10).json()
        assert set(subjects_before) <= set(subjects_after)
        tail = second.sh("tail carrier-north StoreStatusChanged --max 3 --timeout 60")
        assert tail.code == 0, tail.stderr
        delivered = [json.loads(line)["event_id"] for line in tail.stdout.splitlines() if line]
        assert sorted(delivered) == sorted(event_ids)
    finally:
        stop_platform(second)
