"""The API's request guards on their own: JSON depth before parsing, media types, headers,
``Last-Event-ID`` bounds and the limiter behind failed-authentication throttling."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ecoshare.api.errors import ApiError
from ecoshare.api.limits import RequestRateLimiter
from ecoshare.api.request_guards import JsonRequestGuard, SecurityHeaders, json_nesting_exceeds
from ecoshare.api.routes.deliveries import parse_last_event_id

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


@given(json_values, st.integers(min_value=1, max_value=8))
def test_nesting_bound_agrees_with_the_parsed_depth(value: Any, bound: int) -> None:
    raw = json.dumps(value).encode()
    assert json_nesting_exceeds(raw, bound) == (depth(value) > bound)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"{" + b'"a":{' * 50_000 + b"}" * 50_001,
        b'{"location_name": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b"[" * 100_000,
        b'["\\\\"' + b"[" * 1000 + b"]",
    ],
)
def test_deep_or_unbalanced_bodies_exceed_any_bound(raw: bytes) -> None:
    assert json_nesting_exceeds(raw, 32)


def test_brackets_inside_strings_do_not_count() -> None:
    raw = json.dumps({"a": "[[[[[[[[[[{{{{{{{{", "b": '\\"[[[['}).encode()
    assert not json_nesting_exceeds(raw, 1)


def _app() -> TestClient:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"received": json.loads(await request.body() or b"null")})

    app = Starlette(routes=[Route("/echo", echo, methods=["POST", "GET"])])
    guarded = SecurityHeaders(JsonRequestGuard(app, max_depth=4))
    return TestClient(guarded)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"a": 1}', "application/json", 200),
        (b'{"a": 1}', "application/json; charset=UTF-8", 200),
        (b"", None, 200),
        (b'{"a": 1}', "text/plain", 415),
        (b'{"a": 1}', None, 415),
        (b"a=1", "application/x-www-form-urlencoded", 415),
        (b'--x\r\n\r\n{"a":1}\r\n--x--', "multipart/form-data; boundary=x", 415),
        ('{"a": 1}'.encode("utf-16"), "application/json; charset=utf-16", 415),
        ('{"a": 1}'.encode("utf-16"), "application/json", 400),
        (b"[[[[[1]]]]]", "application/json", 400),
    ],
)
def test_bodies_must_be_bounded_utf8_json(
    content: bytes, content_type: str | None, status: int
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = _app().post("/echo", content=content, headers=headers)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["error"] in ("unsupported_media_type", "bad_request")


def test_every_response_carries_the_security_headers() -> None:
    response = _app().post("/echo", content=b"[1]", headers={"Content-Type": "text/plain"})
    for name, value in {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    }.items():
        assert response.headers[name] == value
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize(
    "value",
    ["0:99999999999999999999", "0:9223372036854775808", "4294967296:1", "a:1", "0:1,", "0"],
)
def test_last_event_id_out_of_range_or_malformed_is_400(value: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_last_event_id(value)
    assert refused.value.status == 400


def test_last_event_id_at_the_limits_is_accepted() -> None:
    assert parse_last_event_id("") == {}
    assert parse_last_event_id("2147483647:9223372036854775807,0:0") == {
        2147483647: 9223372036854775807,
        0: 0,
    }


def test_rate_limiter_peeks_without_taking_and_forgets_refilled_keys() -> None:
    now = [0.0]
    limiter = RequestRateLimiter(1.0, 2, clock=lambda: now[0], max_keys=2)
    assert limiter.wait_time("a") is None
    assert limiter.acquire("a") is None and limiter.acquire("a") is None
    assert limiter.wait_time("a") == pytest.approx(1.0)
    assert limiter.acquire("a") == pytest.approx(1.0)
    now[0] = 10.0
    for key in ("b", "c", "d"):
        limiter.acquire(key)
    assert len(limiter._buckets) <= 3  # "a" refilled and was forgotten
    assert limiter.wait_time("a") is None


# -- authentication costs nothing for keys nobody issued --------------------------------


class _Follower:
    """The followed state, in memory: no key records, one partner."""

    def __init__(self) -> None:
        self.catch_ups = 0

    def model(self, topic: str, key: str) -> Any | None:
        return None

    def catch_up(self, timeout_seconds: float = 5.0) -> bool:
        self.catch_ups += 1
        return True


def _authenticator(follower: _Follower, failures: int, state: Any = None) -> Any:
    from ecoshare.api.auth import Authenticator

    return Authenticator(
        operator_key="op-key",
        state=state or follower,
        follower=follower,  # type: ignore[arg-type]
        keys_topic="keys",
        partners_topic="partners",
        partner_limiter=RequestRateLimiter(100, 100),
        operator_limiter=RequestRateLimiter(100, 100),
        failure_limiter=RequestRateLimiter(0.001, failures),
    )


def test_unknown_key_ids_are_refused_without_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    import ecoshare.api.auth as auth_module

    def no_scrypt(*_args: Any) -> bool:
        raise AssertionError("an unknown key id must not reach scrypt")

    monkeypatch.setattr(auth_module, "key_matches", no_scrypt)
    follower = _Follower()
    authenticator = _authenticator(follower, failures=3)
    for _ in range(3):
        with pytest.raises(ApiError) as refused:
            authenticator.authenticate(f"esk_{'ab' * 6}_secret", "192.0.2.1")
        assert refused.value.status == 401
    assert follower.catch_ups == 3
    # The address has spent its failures: refused before any look-up, even the right key.
    for presented in (f"esk_{'ab' * 6}_secret", "op-key"):
        with pytest.raises(ApiError) as limited:
            authenticator.authenticate(presented, "192.0.2.1")
        assert limited.value.status == 429 and int(limited.value.headers["Retry-After"]) >= 1
    assert follower.catch_ups == 3
    # Another address is not affected.
    assert authenticator.authenticate("op-key", "192.0.2.2").operator


# -- authentication reads the followed models, by the keep-last-valid rule --------------


def _control(topic: str, offset: int, key: str, value: Any) -> Any:
    from tests.unit.fake_kafka_for_adapters import FakeMessage

    return FakeMessage(topic, 0, offset, key.encode(), json.dumps(value).encode())


def test_an_invalid_partner_or_key_record_keeps_the_last_valid_one_in_force() -> None:
    from datetime import UTC, datetime

    from ecoshare.adapters.kafka.control_records import CompactedState
    from ecoshare.api.auth import Caller
    from ecoshare.domain.credentials import ApiKeyRecord, issue_key
    from ecoshare.domain.partners import Partner

    state = CompactedState({"keys": ApiKeyRecord, "partners": Partner})
    issued = issue_key("shop-1", datetime(2026, 1, 1, tzinfo=UTC))
    record = issued.record.model_dump(mode="json")
    partner = {"partner_id": "shop-1", "name": "Shop", "roles": ["publisher"]}
    state.apply(_control("keys", 0, issued.key_id, record))
    state.apply(_control("partners", 0, "shop-1", partner))
    # A bad write to each (a typo, an older client) must not cut the partner off.
    state.apply(_control("keys", 1, issued.key_id, dict(record, revoked_at="yesterday")))
    state.apply(_control("partners", 1, "shop-1", dict(partner, enabled="no")))
    authenticator = _authenticator(_Follower(), failures=3, state=state)

    caller = authenticator.authenticate(issued.api_key, "192.0.2.1")
    assert caller == Caller(operator=False, partner_id="shop-1", key_id=issued.key_id)
    assert authenticator.revocation_of(caller) is None

    state.apply(_control("partners", 2, "shop-1", dict(partner, enabled=False)))
    assert authenticator.revocation_of(caller) == "partner 'shop-1' is disabled"
    with pytest.raises(ApiError) as disabled:
        authenticator.authenticate(issued.api_key, "192.0.2.1")
    assert (disabled.value.status, disabled.value.code) == (403, "partner_disabled")

    state.apply(_control("partners", 3, "shop-1", partner))
    state.apply(_control("keys", 2, issued.key_id, dict(record, revoked_at=record["created_at"])))
    assert authenticator.revocation_of(caller) == f"the API key {issued.key_id} has been revoked"
    with pytest.raises(ApiError) as revoked:
        authenticator.authenticate(issued.api_key, "192.0.2.1")
    assert revoked.value.status == 401
