"""The operator CLI driven as a user would, against a platform started with ``ecoshare up``.

The tests of this module share one platform and build on each other in file order:
the governance file is applied first, later tests publish under it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from tests.e2e.conftest import RunningPlatform, wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "postnl" / "governance.yaml"
OWNER = "owner-e2e"
CONSENT_ID = "consent-e2e"
EXAMPLE_AGREEMENTS = {
    "availability-to-consumer-app",
    "status-to-carrier-north",
    "status-to-carrier-south",
    "status-to-consumer-app",
}


@pytest.fixture(scope="module")
def governance(platform: RunningPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The governance file as applied; tests that change the platform keep it in step.

    One per platform: each broker's platform starts from the example file.
    """
    path = tmp_path_factory.mktemp("governance") / "governance.yaml"
    shutil.copy(EXAMPLE, path)
    return path


@pytest.fixture(scope="module")
def published(platform: RunningPlatform) -> dict[str, str]:
    """Event ids published by the consent test, by name, for the tests after it (one per
    platform)."""
    return {}


def edited(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    document = yaml.safe_load(source.read_text())
    change(document)
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def agreement(document: dict[str, Any], agreement_id: str) -> dict[str, Any]:
    return next(a for a in document["agreements"] if a["agreement_id"] == agreement_id)


def delivered_count(platform: RunningPlatform, topic: str) -> int:
    """Records ever written to ``topic`` (0 when it does not exist)."""
    consumer = Consumer(
        {"bootstrap.servers": platform.bootstrap_servers, "group.id": uuid.uuid4().hex}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in metadata.partitions
        )
    finally:
        consumer.close()


def status_event(event_id: str, location: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "location_id": location,
        "location_name": "Hoekwinkel Damrak",
        "status": "CLOSED",
        "reason": "lockdown",
        "effective_from": "2020-03-16T09:00:00+01:00",
        "street": "Damrak",
        "house_number": "1",
        "postal_code": "1012 LG",
        "city": "Amsterdam",
        "latitude": 52.3779,
        "longitude": 4.8986,
        "occurred_at": 1584345600000,
        **extra,
    }


def test_plan_then_apply_is_idempotent(platform: RunningPlatform, governance: Path) -> None:
    planned = platform.sh(f"plan -f {governance}")
    assert planned.code == 0, planned.stderr
    assert "10 to add, 0 to change, 0 to remove" in planned.stdout
    assert "+ agreement status-to-carrier-north v1" in planned.stdout

    applied = platform.sh(f"apply -f {governance} -o json")
    assert applied.code == 0, applied.stderr
    assert applied.json()["applied"] is True
    assert applied.json()["summary"] == {"add": 10, "change": 0, "remove": 0}

    again = platform.sh(f"apply -f {governance}")
    assert again.code == 0, again.stderr
    assert "no changes" in again.stdout
    unchanged = platform.sh(f"plan -f {governance} -o json").json()["summary"]
    assert unchanged == {"add": 0, "change": 0, "remove": 0}

    listed = platform.sh("agreements list -o json").json()
    assert {item["agreement_id"] for item in listed} == EXAMPLE_AGREEMENTS
    partners = platform.sh("partners list -o json").json()
    assert len(partners) == 6


def test_a_changed_agreement_needs_a_version_bump(
    platform: RunningPlatform, governance: Path, tmp_path: Path
) -> None:
    def mask_reason(document: dict[str, Any]) -> None:
        reason = {"action": "mask", "keep_last": 2}
        agreement(document, "status-to-carrier-south")["fields"]["reason"] = reason

    unbumped = edited(governance, tmp_path / "unbumped.yaml", mask_reason)
    refused = platform.sh(f"plan -f {unbumped}")
    assert refused.code == 2
    assert f"{unbumped}: agreements[1] (status-to-carrier-south).version" in refused.stderr
    assert "raise the version to 2" in refused.stderr
    assert platform.sh(f"apply -f {unbumped}").code == 2

    def bump(document: dict[str, Any]) -> None:
        mask_reason(document)
        agreement(document, "status-to-carrier-south")["version"] = 2

    bumped = edited(governance, tmp_path / "bumped.yaml", bump)
    planned = platform.sh(f"plan -f {bumped}")
    assert planned.code == 0, planned.stderr
    assert "~ agreement status-to-carrier-south v1 → v2" in planned.stdout
    assert "fields.reason.action: 'deliver' → 'mask'" in planned.stdout
    assert "0 to add, 1 to change, 0 to remove" in planned.stdout

    assert platform.sh(f"apply -f {bumped}").code == 0
    shutil.copy(bumped, governance)
    shown = platform.sh("agreements show status-to-carrier-south -o json").json()
    assert shown["version"] == 2
    assert shown["fields"]["reason"]["action"] == "mask"

    def drop_availability(document: dict[str, Any]) -> None:
        kept = document["agreements"][:3]
        assert all(a["agreement_id"] != "availability-to-consumer-app" for a in kept)
        document["agreements"] = kept

    removal = platform.sh(
        f"plan -f {edited(governance, tmp_path / 'removal.yaml', drop_availability)} -o json"
    )
    assert removal.json()["summary"] == {"add": 0, "change": 0, "remove": 1}
    assert removal.json()["changes"][0]["id"] == "availability-to-consumer-app"


def test_governance_file_errors_name_file_path_and_problem(
    platform: RunningPlatform, governance: Path, tmp_path: Path
) -> None:
    def bad_action(document: dict[str, Any]) -> None:
        document["agreements"][0]["fields"]["contact_phone"] = {"action": "shout"}

    wrong = edited(governance, tmp_path / "wrong.yaml", bad_action)
    result = platform.sh(f"plan -f {wrong}")
    assert result.code == 2
    assert f"{wrong}: agreements[0].fields.contact_phone" in result.stderr

    def unknown_field(document: dict[str, Any]) -> None:
        document["agreements"][0]["fields"]["shoe_size"] = {"action": "deliver"}

    unknown = edited(governance, tmp_path / "unknown.yaml", unknown_field)
    result = platform.sh(f"apply -f {unknown}")
    assert result.code == 2
    assert "agreements[0]" in result.stderr and "'shoe_size'" in result.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("partners: [\n")
    result = platform.sh(f"plan -f {broken}")
    assert result.code == 2 and "not valid YAML" in result.stderr

    result = platform.sh(f"plan -f {tmp_path / 'missing.yaml'}")
    assert result.code == 2 and "cannot read" in result.stderr


def _tail(platform: RunningPlatform, count: int) -> list[dict[str, Any]]:
    result = platform.sh(f"tail carrier-north StoreStatusChanged --max {count} --timeout 60")
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == count, result.stdout
    return lines


def test_consent_revoke_takes_effect_on_the_next_event(
    platform: RunningPlatform, published: dict[str, str]
) -> None:
    granted = platform.sh(
        f"consent grant --subject {OWNER} --controller franchise-shops --grantee carrier-north"
        f" --purpose parcel-delivery --scope personal --id {CONSENT_ID}"
    )
    assert granted.code == 0, granted.stderr
    personal = {
        "contact_subject_id": OWNER,
        "contact_name": "Anna de Vries",
        "contact_phone": "+31 6 12345678",
    }
    before = str(uuid.uuid4())
    sent = platform.sh(
        "publish StoreStatusChanged -f - --as franchise-shops -o json",
        stdin=json.dumps(status_event(before, "hw-0001", **personal)) + "\n",
    )
    assert sent.code == 0, sent.stderr
    assert sent.json()["event_ids"] == [before]
    first = _tail(platform, 1)[0]
    assert first["event_id"] == before
    assert first["record"]["contact_name"] == "Anna de Vries"
    assert "contact_subject_id" not in first["record"]

    revoked = platform.sh(f"consent revoke {CONSENT_ID}")
    assert revoked.code == 0, revoked.stderr
    after = str(uuid.uuid4())
    sent = platform.sh(
        "publish StoreStatusChanged -f - --as franchise-shops",
        stdin=json.dumps(status_event(after, "hw-0002", **personal)) + "\n",
    )
    assert sent.code == 0, sent.stderr
    deliveries = {line["event_id"]: line["record"] for line in _tail(platform, 2)}
    assert deliveries[before]["contact_name"] == "Anna de Vries"
    assert deliveries[after]["contact_name"] is None
    assert deliveries[after]["contact_phone"] is None
    assert deliveries[after]["location_name"] == "Hoekwinkel Damrak"

    consents = platform.sh(f"consent list --subject {OWNER} -o json").json()
    assert [(c["consent_id"], c["active"]) for c in consents] == [(CONSENT_ID, False)]
    published.update(before=before, after=after)


def test_dry_run_shows_both_sides_and_delivers_nothing(
    platform: RunningPlatform, published: dict[str, str], tmp_path: Path
) -> None:
    assert published, "needs the events of the consent test"
    proposal = {
        "agreement_id": "status-to-carrier-south",
        "version": 3,
        "publishers": ["postnl", "retail-chain", "franchise-shops"],
        "subscriber": "carrier-south",
        "event_types": ["StoreStatusChanged"],
        "purpose": "parcel-delivery",
        "valid_from": "2020-03-01T00:00:00+01:00",
        "fields": {
            "event_id": "deliver",
            "status": "deliver",
            "latitude": {"action": "generalise", "decimals": 1},
        },
    }
    path = tmp_path / "proposal.yaml"
    path.write_text(yaml.safe_dump(proposal))
    result = platform.sh(f"dry-run --agreement {path} --sample 10 -o json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["subscriber"] == "carrier-south"
    assert report["current_version"] == 2
    assert report["replayed"] == 2
    assert report["now"]["delivered"] == 0
    assert report["now"]["withheld"] == {"row_filter": 2}
    assert report["proposed"]["delivered"] == 2
    assert report["proposed"]["fields_delivered"] == ["event_id", "latitude", "status"]
    assert report["proposed"]["fields_transformed"] == {"latitude": "generalise"}
    records = {event["event_id"]: event["proposed"]["record"] for event in report["events"]}
    expected = {"event_id": published["before"], "status": "CLOSED", "latitude": 52.4}
    assert records[published["before"]] == expected

    table = platform.sh(f"dry-run --agreement {path} --sample 10")
    assert table.code == 0, table.stderr
    assert "nothing was delivered" in table.stdout

    # Nothing was applied, and carrier-south's delivery topic is still empty.
    shown = platform.sh("agreements show status-to-carrier-south -o json").json()
    assert shown["version"] == 2
    assert delivered_count(platform, "deliver.carrier-south.StoreStatusChanged") == 0

    bad = tmp_path / "bad.yaml"
    hashed = {"latitude": {"action": "hash", "decimals": 1}}
    bad.write_text(yaml.safe_dump({**proposal, "fields": hashed}))
    refused = platform.sh(f"dry-run --agreement {bad}")
    assert refused.code == 2
    assert f"{bad}: fields.latitude" in refused.stderr


def test_audit_lists_every_decision_on_an_event(
    platform: RunningPlatform, published: dict[str, str]
) -> None:
    result = platform.sh(f"audit {published['before']} -o json")
    assert result.code == 0, result.stderr
    decisions = {item["subscriber_id"]: item for item in result.json()}
    assert set(decisions) == {"carrier-north", "carrier-south", "consumer-app"}
    assert decisions["carrier-north"]["outcome"] == "delivered"
    assert decisions["carrier-north"]["consent_ids"] == [CONSENT_ID]
    assert decisions["carrier-south"]["reason"] == "row_filter"
    assert decisions["consumer-app"]["reason"] == "no_agreement"
    after = platform.sh(f"audit {published['after']} -o json").json()
    north = next(item for item in after if item["subscriber_id"] == "carrier-north")
    assert north["personal_fields_without_consent"] == ["contact_name", "contact_phone"]
    table = platform.sh(f"audit {published['before']}")
    assert table.code == 0 and "row_filter" in table.stdout

    missing = platform.sh(f"audit {uuid.uuid4()}")
    assert missing.code == 1
    assert "no decision recorded" in missing.stderr


def test_partner_keys_are_shown_once_and_can_be_revoked(platform: RunningPlatform) -> None:
    added = platform.sh(
        "partners add city-e2e --name 'Gemeente Utrecht' --role subscriber"
        " --email data@utrecht.example -o json"
    )
    assert added.code == 0, added.stderr
    created = added.json()
    api_key = created["api_key"]["api_key"]
    assert len(created["signing_key"]) == 64
    me = f"{platform.api_url}/v1/partners/city-e2e"

    def get(key: str) -> httpx.Response:
        return httpx.get(me, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    assert get(api_key).status_code == 200
    keys = platform.sh("partners key list city-e2e -o json").json()
    assert [key["key_id"] for key in keys] == [created["api_key"]["key_id"]]
    assert "api_key" not in keys[0] and "hash" not in keys[0]

    assert platform.sh(f"partners key revoke {created['api_key']['key_id']}").code == 0
    # Every API instance follows the key topic; the revocation arrives within a fetch.
    wait_until(lambda: get(api_key).status_code == 401, "the revoked key refused")

    second = platform.sh("partners key create city-e2e -o json").json()
    assert get(second["api_key"]).status_code == 200
    assert platform.sh("partners disable city-e2e").code == 0
    denied = wait_until(
        lambda: (response := get(second["api_key"])).status_code == 403 and response,
        "the disabled partner refused",
    )
    assert denied.json()["error"] == "partner_disabled"

    again = platform.sh("partners add city-e2e --name X --role subscriber")
    assert again.code == 1 and "exists already" in again.stderr
    invalid = platform.sh("partners add Not_An_Id --name X --role subscriber")
    assert invalid.code == 2 and "partner_id" in invalid.stderr


def test_status_and_health(platform: RunningPlatform) -> None:
    status = platform.sh("status -o json")
    assert status.code == 0, status.stderr
    rows = {row["component"]: row for row in status.json()}
    components = {name: row["up"] for name, row in rows.items()}
    assert components == {
        "broker": True,
        "registry": True,
        "worker-0": True,
        "partitions": True,
        "api": True,
    }
    assert rows["partitions"]["stalled"] == 0
    assert "none with lag and no progress" in rows["partitions"]["detail"]
    health = platform.sh("health -o json")
    assert health.code == 0, health.stderr
    report = health.json()
    assert {"totals", "partners", "coverage", "freshness", "agreements"} <= set(report)
    readable = platform.sh("health")
    assert readable.code == 0, readable.stderr
    assert "ecosystem health" in readable.stdout


def test_bad_input_exits_non_zero_with_a_message(platform: RunningPlatform, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(status_event(str(uuid.uuid4()), "x")) + "\n{not json\n")
    publish = f"publish StoreStatusChanged -f {events} --as postnl"
    result = platform.sh(publish)
    assert result.code == 2 and f"{events}:2: not JSON" in result.stderr

    events.write_text(json.dumps(status_event(str(uuid.uuid4()), "x", latitude="north")) + "\n")
    result = platform.sh(publish)
    assert result.code == 2
    assert f"{events}:1: latitude: expected a number" in result.stderr
    assert "nothing was published" in result.stderr

    result = platform.sh(f"publish ParcelTeleported -f {events} --as postnl")
    assert result.code == 2 and "unknown event type" in result.stderr
    result = platform.sh(f"publish StoreStatusChanged -f {events} --as nobody")
    assert result.code == 2 and "not a partner" in result.stderr
    result = platform.sh("agreements list -o xml")
    assert result.code == 2 and "--output" in result.stderr
    result = platform.sh("consent revoke no-such-consent")
    assert result.code == 1 and "no consent" in result.stderr
    result = platform.sh("partners disable no-such-partner")
    assert result.code == 1 and "no partner" in result.stderr
    result = platform.sh("schemas show ParcelTeleported")
    assert result.code == 2

    nowhere = platform.sh("partners list", env={"ECOSHARE_STATE_DIR": str(tmp_path / "none")})
    assert nowhere.code == 1 and "no running platform" in nowhere.stderr


# -- what a new operator and partner hit (narrow, piped output throughout) -------------

WALKTHROUGH_EVENTS = Path(__file__).resolve().parents[2] / "examples" / "events"
STORE_STATUS_FILE = WALKTHROUGH_EVENTS / "store-status.jsonl"


def _file_event_ids() -> list[str]:
    return [json.loads(line)["event_id"] for line in STORE_STATUS_FILE.read_text().splitlines()]


def test_ids_are_shown_in_full_in_narrow_output_and_taken_back(
    platform: RunningPlatform, published: dict[str, str]
) -> None:
    granted = platform.sh(
        "consent grant --subject owner-narrow --controller franchise-shops"
        " --grantee carrier-north --purpose parcel-delivery --scope personal -o json"
    )
    assert granted.code == 0, granted.stderr
    consent_id = granted.json()["consent_id"]
    listed = platform.sh("consent list --subject owner-narrow")
    assert listed.code == 0, listed.stderr
    assert consent_id in listed.stdout
    assert "…" not in listed.stdout
    assert platform.sh(f"consent revoke {consent_id}").code == 0

    audit = platform.sh(f"audit {published['before']}")
    assert audit.code == 0, audit.stderr
    for subscriber in ("carrier-north", "carrier-south", "consumer-app"):
        assert subscriber in audit.stdout
    assert "…" not in audit.stdout
    partners = platform.sh("partners list")
    assert partners.code == 0 and "…" not in partners.stdout
    assert "franchise-shops" in partners.stdout


def test_publish_reports_what_became_of_each_event_and_refuses_duplicates(
    platform: RunningPlatform,
) -> None:
    sent = platform.sh(f"publish StoreStatusChanged -f {STORE_STATUS_FILE} --as postnl")
    assert sent.code == 0, sent.stderr
    assert "sent 3 StoreStatusChanged event(s) as postnl" in sent.stdout
    assert "ecoshare audit EVENT_ID" in sent.stdout
    event_ids = _file_event_ids()
    again = platform.sh(
        f"publish StoreStatusChanged -f {STORE_STATUS_FILE} --as postnl --wait 60 -o json"
    )
    assert again.code == 2, again.stderr
    outcomes = again.json()
    assert outcomes["sent"] == 3
    assert set(outcomes["outcomes"]) == set(event_ids)
    assert outcomes["summary"] == {"quarantined (duplicate_event_id)": 3}

    audited = platform.sh(f"audit {event_ids[0]} -o json")
    assert audited.code == 0, audited.stderr
    kinds = {(item["outcome"], item.get("reason")) for item in audited.json()}
    assert ("quarantined", "duplicate_event_id") in kinds
    assert ("delivered", None) in kinds


def test_publish_waits_for_and_summarises_the_decisions(platform: RunningPlatform) -> None:
    event_id = str(uuid.uuid4())
    sent = platform.sh(
        "publish StoreStatusChanged -f - --as postnl --wait 60",
        stdin=json.dumps(status_event(event_id, "sp-wait")) + "\n",
    )
    assert sent.code == 0, sent.stderr
    assert "1 delivered to carrier-north, consumer-app" in sent.stdout


def test_a_postcode_the_catalog_refuses_is_never_sent(platform: RunningPlatform) -> None:
    result = platform.sh(
        "publish StoreStatusChanged -f - --as postnl",
        stdin=json.dumps(status_event(str(uuid.uuid4()), "sp-hello", postal_code="hello")) + "\n",
    )
    assert result.code == 2
    assert "postal_code" in result.stderr
    assert "'hello' is not a Dutch postcode" in result.stderr
    assert "nothing was published" in result.stderr


def test_dry_run_counts_duplicates_as_quarantined_not_delivered(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    proposal = {
        "agreement_id": "status-to-carrier-north",
        "version": 9,
        "publishers": ["postnl"],
        "subscriber": "carrier-north",
        "event_types": ["StoreStatusChanged"],
        "purpose": "parcel-delivery",
        "valid_from": "2020-03-01T00:00:00+01:00",
        "fields": {"event_id": "deliver", "status": "deliver"},
    }
    path = tmp_path / "proposal.yaml"
    path.write_text(yaml.safe_dump(proposal))
    # The newest 7 ingress events: the file (3), its 3 duplicates, one more event.
    result = platform.sh(f"dry-run --agreement {path} --sample 7 -o json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["skipped"] == {"duplicate_event_id": 3}
    assert report["quarantined"] == 3
    assert report["replayed"] == 4
    # Three of the four replayed events lie in carrier-north's regions (10xx-49xx).
    assert report["now"]["delivered"] == 3
    assert report["now"]["withheld"] == {"row_filter": 1}
    assert len({event["event_id"] for event in report["events"]}) == 4

    table = platform.sh(f"dry-run --agreement {path} --sample 7")
    assert table.code == 0, table.stderr
    assert "duplicate_event_id: 3" in table.stdout


def test_audit_shows_an_oversize_event_the_workers_quarantined(
    platform: RunningPlatform,
) -> None:
    from ecoshare.config.settings import Settings
    from ecoshare.domain.identity import partner_signing_key
    from ecoshare.sdk import Publisher

    event_id = str(uuid.uuid4())
    record = {
        **status_event(event_id, "sp-huge"),
        "reason": "x" * 70_000,
        "publisher_id": "postnl",
        "effective_from": 1584345600000,
        "published_at": 1584345600000,
        "opening_hours_today": None,
        "effective_until": None,
        "contact_subject_id": None,
        "contact_name": None,
        "contact_phone": None,
    }
    # A client that does not check sizes: the workers quarantine the event.
    with Publisher(
        bootstrap_servers=platform.bootstrap_servers,
        schema_registry_url=platform.registry_url,
        partner_id="postnl",
        signing_key=partner_signing_key(platform.signing_secret, "postnl", 1),
        schemas_dir=Settings().schemas_dir,
        max_event_bytes=1_000_000,
    ) as publisher:
        publisher.publish(record, "StoreStatusChanged")
        publisher.flush()
    found = wait_until(
        lambda: (result := platform.sh(f"audit {event_id} -o json")).code == 0 and result.json(),
        "the oversize event's quarantine found",
    )
    assert [(item["outcome"], item["reason"]) for item in found] == [
        ("quarantined", "oversize_event")
    ]
    table = platform.sh(f"audit {event_id}")
    assert "oversize_event" in table.stdout and "exceeds the limit" in table.stdout


def test_apply_keeps_what_the_file_does_not_declare_unless_pruned(
    platform: RunningPlatform, governance: Path
) -> None:
    added = platform.sh("partners add city-prune --name 'Gemeente Delft' --role subscriber -o json")
    assert added.code == 0, added.stderr
    api_key = added.json()["api_key"]["api_key"]
    me = f"{platform.api_url}/v1/partners/city-prune"

    def answers() -> int:
        headers = {"Authorization": f"Bearer {api_key}"}
        return httpx.get(me, headers=headers, timeout=10).status_code

    planned = platform.sh(f"plan -f {governance}")
    assert planned.code == 0, planned.stderr
    assert "- partner city-prune" in planned.stdout
    assert "(1 active API key(s) stop working)" in planned.stdout
    assert "apply --prune" in planned.stdout

    # city-e2e, added by an earlier test, is not in the file either.
    kept = platform.sh(f"apply -f {governance}")
    assert kept.code == 0, kept.stderr
    assert "kept 2 not declared in the file" in kept.stdout
    assert "partner city-prune" in kept.stdout and "partner city-e2e" in kept.stdout
    assert answers() == 200
    assert "city-prune" in {p["partner_id"] for p in platform.sh("partners list -o json").json()}

    pruned = platform.sh(f"apply -f {governance} --prune -o json")
    assert pruned.code == 0, pruned.stderr
    assert pruned.json()["kept"] == []
    assert pruned.json()["api_keys_of_removed_partners"] == {"city-e2e": 1, "city-prune": 1}
    assert "city-prune" not in {
        p["partner_id"] for p in platform.sh("partners list -o json").json()
    }
    assert platform.sh(f"plan -f {governance} -o json").json()["summary"]["remove"] == 0


def test_catalog_asyncapi_describes_the_running_ecosystem(platform: RunningPlatform) -> None:
    from jsonschema import Draft7Validator

    schema_path = Path(__file__).resolve().parents[1] / "data" / "asyncapi"
    validator = Draft7Validator(
        json.loads((schema_path / "asyncapi-3.0.0.schema.json").read_text())
    )
    whole = platform.sh("catalog asyncapi")
    assert whole.code == 0, whole.stderr
    document = whole.json()
    assert list(validator.iter_errors(document)) == []
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert "ingress.StoreStatusChanged" in addresses
    assert "deliver.carrier-north.StoreStatusChanged" in addresses
    assert document["servers"]["kafka"]["host"] == platform.bootstrap_servers

    carrier = platform.sh("catalog asyncapi --partner carrier-south").json()
    assert list(validator.iter_errors(carrier)) == []
    assert {c["address"] for c in carrier["channels"].values()} == {
        "deliver.carrier-south.StoreStatusChanged"
    }
    missing = platform.sh("catalog asyncapi --partner nobody")
    assert missing.code == 1 and "no partner 'nobody'" in missing.stderr


def test_worker_logs_open_without_a_warning(platform: RunningPlatform) -> None:
    log = (platform.state_dir / "logs" / "worker-0.log").read_text()
    assert log.strip(), "the worker logged nothing"
    assert "Warning" not in log.splitlines()[0]
    assert "DeprecationWarning" not in log
