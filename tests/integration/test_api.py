"""The HTTP API against the real embedded platform: every endpoint's auth rules, the error
shapes and limits, consent and audit flows, and a schemathesis run over the served spec.

One platform (broker, registry, a worker, the API process) serves the whole module.
Partners: ``alpha`` publishes to ``beta`` under an agreement; ``delta`` is an outsider
whose key must be refused (403) on the resources of the others; ``gamma`` gets disabled.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ecoshare.config.secrets import operator_key
from ecoshare.config.settings import Settings
from ecoshare.embedded.platform import Platform

STATUS = "StoreStatusChanged"
RATE_BURST = 60
MAX_BODY = 65536
AUTH_FAILURE_BURST = 1000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


INTERNAL_METRICS_PORT = _free_port()


@dataclass
class Api:
    platform: Platform
    client: httpx.Client
    operator: str
    keys: dict[str, str]
    consent_id: str
    webhook_id: str
    spare_key_id: str

    def headers(self, caller: str | None) -> dict[str, str]:
        if caller is None:
            return {}
        key = self.operator if caller == "operator" else self.keys.get(caller, caller)
        return {"Authorization": f"Bearer {key}"}

    def call(
        self,
        method: str,
        path: str,
        caller: str | None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return self.client.request(
            method, path, headers={**self.headers(caller), **(headers or {})}, **kwargs
        )


def status_event(**extra: Any) -> dict[str, Any]:
    return {
        "location_id": f"loc-{uuid.uuid4().hex[:8]}",
        "location_name": "Albert Heijn Oudegracht",
        "status": "OPEN",
        "opening_hours_today": "08:00-20:00",
        "effective_from": 1584345600000,
        "street": "Oudegracht",
        "house_number": "158",
        "postal_code": "3511AZ",
        "city": "Utrecht",
        "latitude": 52.0894,
        "longitude": 5.1204,
        "occurred_at": "2020-03-16T09:00:00+01:00",
        **extra,
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, broker_kind: str) -> Iterator[Api]:
    state_dir = tmp_path_factory.mktemp("api") / "state"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "ECOSHARE_API_RATE_BURST": str(RATE_BURST),
            "ECOSHARE_API_RATE_PER_SECOND": "1",
            "ECOSHARE_API_MAX_BODY_BYTES": str(MAX_BODY),
            # One loopback port, explicitly: every other inside address stays refused.
            "ECOSHARE_API_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1:9",
            # Failed authentications from this test's address are many; the limit is
            # tested from another loopback address.
            "ECOSHARE_API_AUTH_FAILURE_BURST": str(AUTH_FAILURE_BURST),
            "ECOSHARE_API_AUTH_FAILURE_PER_SECOND": "0.05",
            "ECOSHARE_API_METRICS_PORT": str(INTERNAL_METRICS_PORT),
            "ECOSHARE_API_WEBHOOK_MAX_ATTEMPTS": "2",
            "ECOSHARE_API_WEBHOOK_BACKOFF_SECONDS": "0.1",
        }.items():
            env.setenv(name, value)
        for name in ("ECOSHARE_BOOTSTRAP_SERVERS", "ECOSHARE_SCHEMA_REGISTRY_URL"):
            env.delenv(name, raising=False)
        settings = Settings(state_dir=state_dir, workers=1, broker=broker_kind)
        platform = Platform(settings).start()
    try:
        assert platform.api_url is not None
        client = httpx.Client(base_url=platform.api_url, timeout=30)
        operator = operator_key(settings)
        op = {"Authorization": f"Bearer {operator}"}
        keys: dict[str, str] = {}
        for partner_id, roles in (
            ("alpha", ["publisher", "subscriber"]),
            ("beta", ["publisher", "subscriber"]),
            ("gamma", ["subscriber"]),
            ("delta", ["subscriber"]),
        ):
            created = client.post(
                "/v1/partners",
                headers=op,
                json={"partner_id": partner_id, "name": partner_id.title(), "roles": roles},
            )
            assert created.status_code == 201, created.text
            keys[partner_id] = created.json()["api_key"]["api_key"]
        agreement = {
            "agreement_id": "alpha-to-beta",
            "version": 1,
            "publishers": ["alpha"],
            "subscriber": "beta",
            "event_types": [STATUS],
            "purpose": "parcel-delivery",
            "valid_from": "2020-01-01T00:00:00Z",
            "fields": {"event_id": "deliver", "status": "deliver", "location_id": "deliver"},
        }
        assert client.put("/v1/agreements/alpha-to-beta", headers=op, json=agreement).is_success
        consent = client.post(
            "/v1/consents",
            headers={"Authorization": f"Bearer {keys['alpha']}"},
            json={
                "subject": "owner-1",
                "grantee": "beta",
                "purpose": "parcel-delivery",
                "scope": ["personal"],
            },
        )
        assert consent.status_code == 201, consent.text
        webhook = client.post(
            "/v1/webhooks",
            headers={"Authorization": f"Bearer {keys['beta']}"},
            json={"url": "http://127.0.0.1:9/unreachable", "event_type": STATUS},
        )
        assert webhook.status_code == 201, webhook.text
        spare = client.post("/v1/partners/alpha/keys", headers=op, json={"label": "spare"})
        yield Api(
            platform=platform,
            client=client,
            operator=operator,
            keys=keys,
            consent_id=consent.json()["consent_id"],
            webhook_id=webhook.json()["webhook_id"],
            spare_key_id=spare.json()["key_id"],
        )
        client.close()
    finally:
        platform.stop()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.2)
    return value


# -- auth rules of every endpoint -------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Who may call an endpoint: ``allowed`` succeed with ``ok``, ``denied`` get 403."""

    method: str
    path: Callable[[Api], str]
    allowed: tuple[str, ...]
    denied: tuple[str, ...]
    ok: tuple[int, ...] = (200,)
    body: Callable[[str], Any] | None = None
    stream: bool = False


def _new_partner(_: str = "") -> dict[str, Any]:
    return {"partner_id": f"p-{uuid.uuid4().hex[:8]}", "name": "New", "roles": ["subscriber"]}


def _new_agreement_path(_: Api) -> str:
    return f"/v1/agreements/extra-{uuid.uuid4().hex[:8]}"


def _agreement_body(path: str) -> dict[str, Any]:
    # LocationAvailability, so that the StoreStatusChanged parties stay alpha and beta.
    return {
        "agreement_id": path.rsplit("/", 1)[-1],
        "version": 1,
        "publishers": ["alpha"],
        "subscriber": "delta",
        "event_types": ["LocationAvailability"],
        "purpose": "testing",
        "valid_from": "2020-01-01T00:00:00Z",
        "fields": {"available": "deliver"},
    }


def _consent_body(_: str = "") -> dict[str, Any]:
    return {
        "controller": "alpha",
        "subject": f"s-{uuid.uuid4().hex[:6]}",
        "grantee": "*",
        "purpose": "parcel-delivery",
        "scope": ["contact_name"],
    }


OPERATOR = ("operator",)
ALPHA = ("operator", "alpha")
BETA = ("operator", "beta")
OUTSIDER = ("delta",)

RULES: dict[str, Rule] = {
    "list partners": Rule("GET", lambda a: "/v1/partners", OPERATOR, ("alpha",)),
    "create partner": Rule(
        "POST", lambda a: "/v1/partners", OPERATOR, ("alpha",), (201,), _new_partner
    ),
    "disable partner": Rule("POST", lambda a: "/v1/partners/gamma/disable", OPERATOR, ("alpha",)),
    "enable partner": Rule("POST", lambda a: "/v1/partners/gamma/enable", OPERATOR, ("alpha",)),
    "put agreement": Rule(
        "PUT", _new_agreement_path, OPERATOR, ("alpha",), (200,), _agreement_body
    ),
    "delete agreement": Rule(
        "DELETE", lambda a: "/v1/agreements/no-such-agreement", OPERATOR, ("alpha",), (404,)
    ),
    "ecosystem health": Rule(
        "GET", lambda a: "/v1/health/ecosystem", OPERATOR, ("alpha",), (200, 503)
    ),
    "get partner": Rule("GET", lambda a: "/v1/partners/alpha", ALPHA, OUTSIDER),
    "list keys": Rule("GET", lambda a: "/v1/partners/alpha/keys", ALPHA, OUTSIDER),
    "create key": Rule(
        "POST", lambda a: "/v1/partners/alpha/keys", ALPHA, OUTSIDER, (201,), lambda _: {}
    ),
    "revoke key": Rule(
        "DELETE", lambda a: f"/v1/partners/alpha/keys/{a.spare_key_id}", ALPHA, OUTSIDER
    ),
    "partner agreements": Rule("GET", lambda a: "/v1/partners/alpha/agreements", ALPHA, OUTSIDER),
    "recipients": Rule("GET", lambda a: "/v1/partners/alpha/recipients", ALPHA, OUTSIDER),
    "delivery statistics": Rule("GET", lambda a: "/v1/partners/beta/deliveries", BETA, OUTSIDER),
    "get agreement": Rule("GET", lambda a: "/v1/agreements/alpha-to-beta", ALPHA, OUTSIDER),
    "list consents of a controller": Rule(
        "GET", lambda a: "/v1/consents?controller=alpha", ALPHA, OUTSIDER
    ),
    "get consent": Rule("GET", lambda a: f"/v1/consents/{a.consent_id}", ALPHA, OUTSIDER),
    "grant consent": Rule("POST", lambda a: "/v1/consents", ALPHA, OUTSIDER, (201,), _consent_body),
    "withdraw consent": Rule(
        "POST", lambda a: f"/v1/consents/{a.consent_id}/withdraw", ALPHA, OUTSIDER
    ),
    "list webhooks of a subscriber": Rule(
        "GET", lambda a: "/v1/webhooks?subscriber=beta", BETA, OUTSIDER
    ),
    "get webhook": Rule("GET", lambda a: f"/v1/webhooks/{a.webhook_id}", BETA, OUTSIDER),
    "create webhook": Rule(
        "POST",
        lambda a: "/v1/webhooks",
        BETA,
        OUTSIDER,
        (201,),
        lambda _: {"url": "http://127.0.0.1:9/", "event_type": STATUS, "subscriber": "beta"},
    ),
    "publish": Rule(
        "POST",
        lambda a: f"/v1/events/{STATUS}?publisher=alpha",
        ALPHA,
        OUTSIDER,
        (202,),
        lambda _: status_event(),
    ),
    "stream deliveries": Rule(
        "GET",
        lambda a: f"/v1/deliveries/{STATUS}/stream?subscriber=beta",
        BETA,
        OUTSIDER,
        stream=True,
    ),
}


def _status(api: Api, rule: Rule, caller: str | None) -> int:
    path = rule.path(api)
    body = rule.body(path) if rule.body else None
    if rule.stream:
        with api.client.stream(
            rule.method, path, headers=api.headers(caller), timeout=httpx.Timeout(10, read=5)
        ) as response:
            return response.status_code
    return api.call(rule.method, path, caller, json=body).status_code


@pytest.mark.parametrize("name", list(RULES))
def test_auth_rules(api: Api, name: str) -> None:
    rule = RULES[name]
    # The last character is changed, never kept: a key ending in "x" must not be its own forgery.
    forged = api.operator[:-1] + ("x" if api.operator[-1] != "x" else "y")
    for wrong in (None, "not-a-key", f"esk_{'0' * 12}_guessed", forged):
        response_status = _status(api, rule, wrong)
        assert response_status == 401, f"{name} with key {wrong!r}: {response_status}"
    for caller in rule.denied:
        assert _status(api, rule, caller) == 403, f"{name} as {caller}"
    for caller in rule.allowed:
        assert _status(api, rule, caller) in rule.ok, f"{name} as {caller}"


def test_a_401_names_the_scheme_and_lists_are_scoped_to_the_caller(api: Api) -> None:
    response = api.call("GET", "/v1/agreements", None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthorized"
    by_header = api.client.get("/v1/agreements", headers={"X-API-Key": api.keys["alpha"]})
    listed = by_header.json()
    assert "alpha-to-beta" in {a["agreement_id"] for a in listed}
    assert all("alpha" in a["publishers"] or a["subscriber"] == "alpha" for a in listed)
    assert api.call("GET", "/v1/agreements", "gamma").json() == []
    assert all(c["controller"] == "alpha" for c in api.call("GET", "/v1/consents", "alpha").json())
    assert api.call("GET", "/v1/consents", "delta").json() == []
    assert api.call("GET", "/v1/webhooks", "delta").json() == []
    assert api.call("GET", "/v1/webhooks", "beta").json()


def test_revoked_and_disabled_keys_are_refused(api: Api) -> None:
    issued = api.call("POST", "/v1/partners/gamma/keys", "operator", json={}).json()
    key = issued["api_key"]
    assert api.call("GET", "/v1/partners/gamma", key).status_code == 200
    assert api.call("POST", "/v1/partners/gamma/disable", "operator").status_code == 200
    refused = api.call("GET", "/v1/partners/gamma", key)
    assert refused.status_code == 403 and refused.json()["error"] == "partner_disabled"
    assert api.call("POST", "/v1/partners/gamma/enable", "operator").status_code == 200
    assert api.call("GET", "/v1/partners/gamma", key).status_code == 200
    revoke = api.call("DELETE", f"/v1/partners/gamma/keys/{issued['key_id']}", "operator")
    assert revoke.json()["revoked_at"] is not None
    assert api.call("GET", "/v1/partners/gamma", key).status_code == 401


# -- error shapes and limits -----------------------------------------------------------


def test_errors_are_json_everywhere(api: Api) -> None:
    missing = api.call("GET", "/v1/no-such-thing", "operator")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = api.call("PATCH", "/v1/partners", "operator")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "GET, POST"
    assert wrong_method.json()["error"] == "method_not_allowed"
    invalid = api.call("POST", "/v1/partners", "operator", json={"partner_id": "Not Valid"})
    assert invalid.status_code == 422
    fields = {detail["field"] for detail in invalid.json()["details"]}
    assert {"body:partner_id", "body:name", "body:roles"} <= fields
    not_json = api.client.post(
        f"/v1/events/{STATUS}",
        content=b"{nope",
        headers={**api.headers("alpha"), "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]
    unknown_type = api.call("POST", "/v1/events/ParcelTeleported", "alpha", json={})
    assert unknown_type.status_code == 404
    conflict = api.call(
        "POST", "/v1/partners", "operator", json=_new_partner() | {"partner_id": "alpha"}
    )
    assert conflict.status_code == 409 and conflict.json()["error"] == "conflict"


def test_request_bodies_are_limited(api: Api) -> None:
    big = [status_event(location_name="x" * 1000) for _ in range(MAX_BODY // 1000 + 5)]
    declared = api.call("POST", f"/v1/events/{STATUS}", "alpha", json=big)
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 4096 + 2):
            yield b" " * 4096

    streamed = api.client.post(
        f"/v1/events/{STATUS}", headers=api.headers("alpha"), content=chunks()
    )
    assert streamed.status_code == 413


def test_rate_limits_answer_429_with_retry_after(api: Api) -> None:
    key = api.call("POST", "/v1/partners/beta/keys", "operator", json={}).json()["api_key"]
    statuses = [api.call("GET", "/v1/partners/beta", key) for _ in range(RATE_BURST + 40)]
    limited = [response for response in statuses if response.status_code == 429]
    assert limited, "no request was rate limited"
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["error"] == "rate_limited"
    # Limits are per key: the operator and other keys are unaffected.
    assert api.call("GET", "/v1/partners/beta", "beta").status_code == 200


# -- publishing, consent and audit -----------------------------------------------------


def _ingress_values(api: Api) -> list[bytes]:
    """Every message value on the StoreStatusChanged ingress topic."""
    topic = f"ingress.{STATUS}"
    consumer = Consumer(
        {
            "bootstrap.servers": api.platform.bootstrap_servers,
            "group.id": uuid.uuid4().hex,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending, values = set(partitions), []
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                elif error is None:
                    values.append(message.value() or b"")
        assert not pending
        return values
    finally:
        consumer.close()


def test_an_invalid_batch_publishes_nothing(api: Api) -> None:
    valid_id, marker_id = str(uuid.uuid4()), str(uuid.uuid4())
    batch = [
        status_event(event_id=valid_id),
        status_event(latitude="north", status="AJAR", bogus=True),
        "not an event",
    ]
    refused = api.call("POST", f"/v1/events/{STATUS}", "alpha", json=batch)
    assert refused.status_code == 400
    body = refused.json()
    assert body["error"] == "invalid_event"
    assert {detail["field"] for detail in body["details"]} == {
        "[1].latitude",
        "[1].status",
        "[1].bogus",
        "[2]",
    }
    accepted = api.call(
        "POST", f"/v1/events/{STATUS}", "alpha", json=[status_event(event_id=marker_id)]
    )
    assert accepted.status_code == 202 and accepted.json()["event_ids"] == [marker_id]
    values = _ingress_values(api)
    assert any(marker_id.encode() in value for value in values)
    assert not any(valid_id.encode() in value for value in values)


def test_publishing_is_bound_to_the_callers_identity(api: Api) -> None:
    spoofed = api.call(
        "POST", f"/v1/events/{STATUS}", "alpha", json=status_event(publisher_id="beta")
    )
    assert spoofed.status_code == 400
    assert spoofed.json()["details"][0]["field"] == "publisher_id"
    as_other = api.call("POST", f"/v1/events/{STATUS}?publisher=beta", "alpha", json={})
    assert as_other.status_code == 403
    operator_unnamed = api.call("POST", f"/v1/events/{STATUS}", "operator", json=status_event())
    assert operator_unnamed.status_code == 400
    subscriber_only = api.call("POST", f"/v1/events/{STATUS}", "delta", json=status_event())
    assert subscriber_only.status_code == 403


def test_consent_is_granted_and_withdrawn_by_its_controller(api: Api) -> None:
    granted = api.call(
        "POST",
        "/v1/consents",
        "alpha",
        json={
            "subject": "owner-42",
            "grantee": "beta",
            "purpose": "parcel-delivery",
            "scope": ["contact_name", "contact_phone"],
            "expires_at": "2030-01-01T00:00:00Z",
        },
    )
    assert granted.status_code == 201, granted.text
    consent = granted.json()
    assert consent["controller"] == "alpha" and consent["withdrawn_at"] is None
    mine = api.call("GET", "/v1/consents?subject=owner-42", "alpha").json()
    assert [c["consent_id"] for c in mine] == [consent["consent_id"]]
    assert api.call("GET", "/v1/consents?subject=owner-42", "beta").json() == []
    other = api.call("POST", f"/v1/consents/{consent['consent_id']}/withdraw", "delta")
    assert other.status_code == 403
    withdrawn = api.call("POST", f"/v1/consents/{consent['consent_id']}/withdraw", "alpha")
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn_at"] is not None
    backwards = api.call(
        "POST",
        "/v1/consents",
        "alpha",
        json={
            "subject": "owner-43",
            "grantee": "beta",
            "purpose": "p",
            "scope": ["personal"],
            "given_at": "2021-01-01T00:00:00Z",
            "expires_at": "2020-01-01T00:00:00Z",
        },
    )
    assert backwards.status_code == 400 and backwards.json()["details"]
    for_other = api.call(
        "POST", "/v1/consents", "alpha", json={**_consent_body(), "controller": "beta"}
    )
    assert for_other.status_code == 403


def test_agreement_updates_need_a_version_bump(api: Api) -> None:
    current = api.call("GET", "/v1/agreements/alpha-to-beta", "operator").json()
    changed = {**current, "fields": {**current["fields"], "city": {"action": "deliver"}}}
    refused = api.call("PUT", "/v1/agreements/alpha-to-beta", "operator", json=changed)
    assert refused.status_code == 409 and "raise the version" in refused.json()["message"]
    unknown_field = {**changed, "version": 2, "fields": {"shoe_size": {"action": "deliver"}}}
    problems = api.call("PUT", "/v1/agreements/alpha-to-beta", "operator", json=unknown_field)
    assert problems.status_code == 400
    assert "'shoe_size'" in problems.json()["details"][0]["message"]
    same = api.call("PUT", "/v1/agreements/alpha-to-beta", "operator", json=current)
    assert same.status_code == 200


def test_audit_look_up_is_scoped_to_the_parties(api: Api) -> None:
    published = api.call("POST", f"/v1/events/{STATUS}", "alpha", json=status_event())
    (event_id,) = published.json()["event_ids"]
    found = wait_for(
        lambda: (
            (r := api.call("GET", f"/v1/audit/{event_id}", "operator")).status_code == 200
            and r.json()
        ),
        "the event's decisions",
    )
    outcomes = {d["subscriber_id"]: d["outcome"] for d in found["decisions"]}
    assert outcomes["beta"] == "delivered"
    as_publisher = api.call("GET", f"/v1/audit/{event_id}", "alpha").json()["decisions"]
    assert len(as_publisher) == len(found["decisions"])
    as_subscriber = api.call("GET", f"/v1/audit/{event_id}", "beta").json()["decisions"]
    assert [d["subscriber_id"] for d in as_subscriber] == ["beta"]
    assert api.call("GET", f"/v1/audit/{event_id}", "gamma").status_code == 403
    assert api.call("GET", f"/v1/audit/{uuid.uuid4()}", "operator").status_code == 404


def test_docs_spec_and_metrics_are_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert "/v1/events/{event_type}" in spec["paths"]
    assert api.client.get("/docs").status_code == 200
    # Metrics name every partner with its volumes: the operator's only.
    assert api.call("GET", "/metrics", None).status_code == 401
    assert api.call("GET", "/metrics", "alpha").status_code == 403
    assert api.call("GET", "/v1/partners/alpha", "alpha").status_code == 200
    metrics = api.call("GET", "/metrics", "operator").text
    internal = httpx.get(f"http://127.0.0.1:{INTERNAL_METRICS_PORT}/metrics", timeout=10)
    assert internal.status_code == 200 and "ecoshare_build_info" in internal.text
    assert 'route="/v1/partners/{partner_id}"' in metrics
    assert "ecoshare_build_info" in metrics


def test_schemathesis_finds_no_server_error_or_schema_violation(api: Api, tmp_path: Path) -> None:
    """Property-based requests from the served OpenAPI spec, with the operator key.

    The SSE stream (it never ends) and webhook creation (generated names would be looked
    up in DNS) are left out here; :func:`test_no_request_gets_a_server_error` drives them.
    """
    log_before = len(_api_log(api))
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable is not None, "schemathesis is a pinned dev dependency"
    result = subprocess.run(
        [
            executable,
            "run",
            f"{api.platform.api_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {api.operator}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance,"
            "allow_header_conformance,unsupported_method,negative_data_rejection,ignored_auth",
            "--mode",
            "all",
            "--max-examples",
            "5",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            "20200316",
            "--exclude-path-regex",
            "/stream$",
            "--exclude-operation-id",
            "create_webhook_v1_webhooks_post",
            "--request-timeout",
            "30",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert _unhandled(_api_log(api)[log_before:]) == []


# -- hardening: webhook targets, bodies, headers, authentication ------------------------

INSIDE_TARGETS = [
    "https://127.0.0.1/hook",
    "https://localhost/hook",
    "https://LOCALHOST:8443/",
    "https://[::1]/",
    "https://0.0.0.0/",
    "https://127.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://[::ffff:127.0.0.1]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/",
    "https://192.168.1.1/",
    "https://[fd00::1]/",
    "https://224.0.0.1/",
    "http://127.0.0.1:10/",
    "http://localhost:9/",
]


def _own_listeners(api: Api) -> list[str]:
    assert api.platform.api_url is not None
    ports = {
        httpx.URL(api.platform.api_url).port,
        httpx.URL(api.platform.schema_registry_url).port,
        int(api.platform.bootstrap_servers.rsplit(":", 1)[1]),
    }
    return [f"https://127.0.0.1:{port}/" for port in ports] + [
        f"http://127.0.0.1:{port}/" for port in ports
    ]


def test_webhooks_cannot_target_the_inside_of_the_deployment(api: Api) -> None:
    before = {w["webhook_id"] for w in api.call("GET", "/v1/webhooks", "beta").json()}
    for url in [*INSIDE_TARGETS, "https://user@127.0.0.1/", *_own_listeners(api)]:
        refused = api.call("POST", "/v1/webhooks", "beta", json={"url": url, "event_type": STATUS})
        assert refused.status_code == 400, f"{url}: {refused.status_code} {refused.text}"
        body = refused.json()
        assert body["error"] in ("webhook_target_refused", "invalid_request"), body
        assert body["details"][0]["field"].endswith("url")
    after = {w["webhook_id"] for w in api.call("GET", "/v1/webhooks", "beta").json()}
    assert after == before
    # The operator's exception holds, and only exactly as written.
    allowed = api.call(
        "POST", "/v1/webhooks", "beta", json={"url": "http://127.0.0.1:9/x", "event_type": STATUS}
    )
    assert allowed.status_code == 201
    assert api.call("DELETE", f"/v1/webhooks/{allowed.json()['webhook_id']}", "beta").is_success


class ConnectionCounter:
    """A loopback TCP listener that counts connections and answers none of them."""

    def __init__(self) -> None:
        import socket
        import threading

        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = int(self.socket.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close()


def test_a_webhook_whose_target_is_inside_gets_no_connection(api: Api) -> None:
    """A registration that predates the checks (written straight to the topic): the
    dispatcher refuses it before any connection, and the state names only the class."""
    from datetime import UTC, datetime

    from ecoshare.adapters.kafka.control_records import delete_record, put_record
    from ecoshare.adapters.kafka.writer import AcknowledgedWriter
    from ecoshare.webhooks import WebhookRecord

    counter = ConnectionCounter()
    writer = AcknowledgedWriter(api.platform.bootstrap_servers)
    webhook_id = f"wh_{uuid.uuid4().hex[:16]}"
    try:
        record = WebhookRecord(
            webhook_id=webhook_id,
            subscriber="beta",
            event_type=STATUS,
            url=f"https://localhost:{counter.port}/hook",
            created_at=datetime.now(UTC),
            secret_nonce=uuid.uuid4().hex,
        )
        put_record(writer, "ecoshare.webhooks", webhook_id, record.model_dump(mode="json"))
        published = api.call("POST", f"/v1/events/{STATUS}", "alpha", json=status_event())
        assert published.status_code == 202

        def refused_state() -> Any:
            response = api.call("GET", f"/v1/webhooks/{webhook_id}", "beta")
            state = response.json().get("state") if response.status_code == 200 else None
            return state if state and state["dead_lettered"] >= 1 else None

        state = wait_for(refused_state, "the refused delivery dead-lettered")
        assert state["last_error"] == "target_refused"
        assert "last_status_code" not in state
        assert counter.connections == 0
    finally:
        delete_record(writer, "ecoshare.webhooks", webhook_id)
        writer.close()
        counter.close()


def test_disabling_a_partner_suspends_its_webhooks(api: Api) -> None:
    partner_id = f"p-{uuid.uuid4().hex[:8]}"
    created = api.call(
        "POST",
        "/v1/partners",
        "operator",
        json={"partner_id": partner_id, "name": "Soon Disabled", "roles": ["subscriber"]},
    )
    assert created.status_code == 201
    webhook = api.call(
        "POST",
        "/v1/webhooks",
        "operator",
        json={"url": "http://127.0.0.1:9/x", "event_type": STATUS, "subscriber": partner_id},
    )
    assert webhook.status_code == 201, webhook.text
    path = f"/v1/webhooks/{webhook.json()['webhook_id']}"

    def status() -> str:
        state = api.call("GET", path, "operator").json()["state"]
        return str(state["status"]) if state else "starting"

    assert status() != "suspended"
    assert api.call("POST", f"/v1/partners/{partner_id}/disable", "operator").status_code == 200
    assert status() == "suspended"
    assert api.call("POST", f"/v1/partners/{partner_id}/enable", "operator").status_code == 200
    assert wait_for(lambda: status() != "suspended", "the webhook running again")
    assert api.call("DELETE", path, "operator").is_success


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("method", "path", "caller"),
    [
        ("POST", f"/v1/events/{STATUS}", "alpha"),
        ("PUT", "/v1/agreements/deep", "operator"),
        ("POST", "/v1/consents", "alpha"),
        ("POST", "/v1/partners", "operator"),
        ("POST", "/v1/webhooks", "beta"),
    ],
)
def test_deeply_nested_json_answers_400_on_every_json_route(
    api: Api, method: str, path: str, caller: str
) -> None:
    json_type = {"Content-Type": "application/json"}
    # Tens of thousands deep, within the body size limit of this platform (64 KiB).
    for body in (
        _deep(30_000),
        b"{" + b'"a":{' * 10_000 + b"}" * 10_001,
        json.dumps(status_event()).encode()[:-1] + b', "location_name": ' + _deep(20_000) + b"}",
        b"[" * 50_000,
    ):
        response = api.call(method, path, caller, content=body, headers=json_type)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "bad_request"


def test_json_routes_take_only_utf8_application_json(api: Api) -> None:
    event = json.dumps(status_event())
    path = f"/v1/events/{STATUS}"
    for content, content_type in (
        (event.encode(), "text/plain"),
        (b"event=" + event.encode(), "application/x-www-form-urlencoded"),
        (b"--b\r\n\r\n" + event.encode() + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"),
        (event.encode("utf-16"), None),
        (event.encode("utf-16"), "application/json; charset=utf-16"),
    ):
        headers = api.headers("alpha")
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = api.client.post(path, content=content, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert response.json()["error"] == "unsupported_media_type"
    utf16_declared_json = api.client.post(
        path,
        content=event.encode("utf-16"),
        headers={**api.headers("alpha"), "Content-Type": "application/json"},
    )
    assert utf16_declared_json.status_code == 400
    accepted = api.client.post(
        path,
        content=event.encode(),
        headers={**api.headers("alpha"), "Content-Type": "application/json; charset=utf-8"},
    )
    assert accepted.status_code == 202, accepted.text


def test_a_last_event_id_beyond_64_bits_answers_400(api: Api) -> None:
    for value in ("0:99999999999999999999", "0:9223372036854775808", "9999999999:0"):
        with api.client.stream(
            "GET",
            f"/v1/deliveries/{STATUS}/stream",
            headers={**api.headers("beta"), "Last-Event-ID": value},
            timeout=httpx.Timeout(10, read=5),
        ) as response:
            response.read()
            assert response.status_code == 400, value
            assert response.json()["details"][0]["field"] == "header:last-event-id"


def test_no_redirect_echoes_the_host_header(api: Api) -> None:
    response = api.client.get(
        "/v1/partners/", headers={**api.headers("operator"), "Host": "attacker.example"}
    )
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "attacker.example" not in response.text


def test_security_headers_and_no_store_on_secrets(api: Api) -> None:
    issued = api.call("POST", "/v1/partners/alpha/keys", "alpha", json={"label": "headers"})
    assert issued.status_code == 201 and issued.json()["api_key"].startswith("esk_")
    for response in (
        issued,
        api.call("GET", "/v1/partners/alpha", None),
        api.client.get("/healthz"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert api.call("DELETE", f"/v1/partners/alpha/keys/{issued.json()['key_id']}", "alpha")


def test_failed_authentication_is_limited_per_client_address(api: Api) -> None:
    assert api.platform.api_url is not None
    transport = httpx.HTTPTransport(local_address="127.0.0.3")
    with httpx.Client(base_url=api.platform.api_url, transport=transport, timeout=30) as other:
        statuses = []
        for attempt in range(AUTH_FAILURE_BURST * 2):
            response = other.get(
                "/v1/agreements", headers={"Authorization": f"Bearer guess-{attempt}"}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429, statuses[-5:]
        assert set(statuses[:-1]) == {401}
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"] == "rate_limited"
        # The address is held off even with a valid key; other addresses are not.
        valid = {"Authorization": f"Bearer {api.keys['alpha']}"}
        assert other.get("/v1/agreements", headers=valid).status_code == 429
    assert api.call("GET", "/v1/agreements", "alpha").status_code == 200


# -- no request, however malformed, gets a 5xx ------------------------------------------


def _api_log(api: Api) -> str:
    path = api.platform.logs_dir / "api.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _unhandled(log_text: str) -> list[str]:
    return [
        line
        for line in log_text.splitlines()
        if "Traceback" in line or "unexpected error" in line or "Exception in ASGI" in line
    ]


LOOPBACK_WEBHOOK_URLS = [
    "http://127.0.0.1:9/x",
    "https://127.1/",
    "https://[::1]/",
    "https://0x7f000001:8080/",
    "http://localhost:9/",
]
_known_ids = {"alpha", "beta", "gamma", "delta", "alpha-to-beta"}
path_ids = st.text(min_size=0, max_size=24).filter(lambda text: text not in _known_ids)
NASTY_VALUES = [
    "0:99999999999999999999",
    "0:9223372036854775808",
    "99999999999:0",
    "0:1,0:2,1:-1",
    "-1",
    "1e309",
    "NaN",
    "%00",
    "../../etc/passwd",
    "esk_000000000000_",
    "Bearer",
    "a" * 5000,
]
header_text = st.one_of(
    st.sampled_from(NASTY_VALUES),
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=80,
    ),
)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.none(),
    json_like.map(lambda value: json.dumps(value).encode()),
    st.builds(lambda event: json.dumps(event).encode(), st.just(status_event())),
    st.integers(min_value=33, max_value=5000).map(_deep),
    st.integers(min_value=33, max_value=5000).map(lambda depth: b'{"a":' * depth + b"1"),
    st.binary(max_size=300),
)


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    ids: tuple[str, ...]
    auth: str | None
    content_type: str | None
    extra_headers: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...]
    body: bytes | None


def _operations(api: Api) -> list[tuple[str, str]]:
    spec = api.client.get("/openapi.json").json()
    found = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]
    return [*found, ("GET", "/metrics"), ("GET", "/healthz"), ("PATCH", "/v1/partners")]


@st.composite
def calls(draw: st.DrawFn, operations: list[tuple[str, str]]) -> Call:
    method, template = draw(st.sampled_from(operations))
    ids = tuple(
        draw(st.one_of(st.sampled_from(NASTY_VALUES), path_ids)) for _ in range(template.count("{"))
    )
    auth = draw(st.sampled_from([None, "operator", "alpha", "beta", "junk", "operator", "alpha"]))
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "application/json",
                "application/json",
                None,
                "text/plain",
                "application/json; charset=latin-1",
                "multipart/form-data",
                "application/json; charset",
            ]
        )
    )
    names = st.sampled_from(
        ["Last-Event-ID", "X-API-Key", "Authorization", "Content-Length", "Accept", "Host"]
    )
    extra_headers = tuple(draw(st.lists(st.tuples(names, header_text), max_size=2)))
    params = st.sampled_from(
        ["publisher", "subscriber", "from", "max", "controller", "subject", "grantee"]
    )
    query = tuple(draw(st.lists(st.tuples(params, header_text), max_size=3)))
    body = draw(bodies)
    if template == "/v1/webhooks" and body is not None and b'"url"' in body:
        # Generated URLs would make the API resolve generated names: loopback only.
        body = json.dumps(
            {"url": draw(st.sampled_from(LOOPBACK_WEBHOOK_URLS)), "event_type": STATUS}
        ).encode()
    return Call(method, template, ids, auth, content_type, extra_headers, query, body)


def _send(api: Api, client: httpx.Client, call: Call) -> int:
    path = call.template
    for value in call.ids:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + quote(value, safe="") + path[end + 1 :]
    headers: list[tuple[bytes, bytes]] = []
    if call.auth == "junk":
        headers.append((b"Authorization", b"Bearer esk_000000000000_junk"))
    elif call.auth is not None:
        headers.append((b"Authorization", api.headers(call.auth)["Authorization"].encode()))
    if call.content_type is not None:
        headers.append((b"Content-Type", call.content_type.encode()))
    headers.extend((name.encode(), value.encode("latin-1")) for name, value in call.extra_headers)
    request = client.build_request(
        call.method,
        path,
        params=list(call.query),
        content=call.body,
        headers=headers,
        # Generous: a busy machine or a broker catch-up may be slow; a hang still fails.
        timeout=httpx.Timeout(30, read=30),
    )
    try:
        response = client.send(request, stream=True)
    except httpx.LocalProtocolError:
        return 0  # not sendable over HTTP/1.1 at all (the client refuses it)
    try:
        return response.status_code
    finally:
        response.close()


def test_no_request_gets_a_server_error(api: Api) -> None:
    """Hypothesis drives every route with malformed ids, headers, queries and bodies."""
    assert api.platform.api_url is not None
    log_before = len(_api_log(api))
    operations = _operations(api)
    transport = httpx.HTTPTransport(local_address="127.0.0.4")
    with httpx.Client(base_url=api.platform.api_url, transport=transport) as client:

        @settings(
            max_examples=600,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(calls(operations))
        @example(
            Call(
                "POST",
                "/v1/events/{event_type}",
                (STATUS,),
                "alpha",
                "application/json",
                (),
                (),
                _deep(5000),
            )
        )
        @example(
            Call(
                "GET",
                "/v1/deliveries/{event_type}/stream",
                (STATUS,),
                "beta",
                None,
                (("Last-Event-ID", "0:99999999999999999999"),),
                (),
                None,
            )
        )
        def no_server_error(call: Call) -> None:
            status = _send(api, client, call)
            assert status < 500, call

        no_server_error()
    assert _unhandled(_api_log(api)[log_before:]) == []
