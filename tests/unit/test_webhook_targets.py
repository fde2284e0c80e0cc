"""Webhook target checks: what a partner's URL may reach, decided without any connection.

Resolution is a fake here: no test resolves a name through the network, and requests
go to an in-memory httpx transport that records what would have been sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import httpx
import pytest

from ecoshare.webhooks.dispatcher import (
    DELIVERY_FAILED,
    TARGET_REFUSED,
    post_to_checked_address,
)
from ecoshare.webhooks.targets import (
    IpAddress,
    Listener,
    TargetPolicy,
    WebhookTargetRefusedError,
    address_refusal,
    listeners_of,
    parse_allowlist,
    parse_target,
)

PUBLIC = ipaddress.ip_address("9.9.9.9")  # public; never contacted (in-memory transport)
PUBLIC_V4 = ipaddress.ip_address("8.8.8.8")


def resolving_to(*addresses: str) -> object:
    calls: list[str] = []

    def resolve(host: str, port: int) -> Sequence[IpAddress]:
        calls.append(host)
        return [ipaddress.ip_address(address) for address in addresses]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def no_lookup(host: str, port: int) -> Sequence[IpAddress]:
    raise AssertionError(f"{host} must not be resolved")


INSIDE_SPELLINGS = [
    "https://127.0.0.1/hook",
    "https://127.0.0.1:8080/hook",
    "https://localhost/hook",
    "https://LOCALHOST:9092/",
    "https://[::1]/",
    "https://0.0.0.0/",
    "https://127.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://[::ffff:127.0.0.1]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",
    "https://[fd00::1]/",
    "https://[fe80::1]/",
    "https://224.0.0.1/",
    "https://240.0.0.1/",
]


@pytest.mark.parametrize("url", INSIDE_SPELLINGS)
def test_every_spelling_of_an_inside_address_is_refused(url: str) -> None:
    resolve = resolving_to("127.0.0.1", "::1")  # what localhost resolves to
    with pytest.raises(WebhookTargetRefusedError) as refused:
        TargetPolicy().check(parse_target(url), resolve)  # type: ignore[arg-type]
    assert refused.value.reason == "address_not_allowed"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://user@127.0.0.1/", "invalid_url"),
        ("https://user:pw@example.org/", "invalid_url"),
        ("ftp://example.org/", "invalid_url"),
        ("https:///nohost", "invalid_url"),
        ("https://exa mple.org/", "invalid_url"),
        ("https://bücher.example/", "invalid_url"),
        ("https://example.org:99999/", "invalid_url"),
        ("https://example.org:0/", "invalid_url"),
        ("https://[::1%25lo]/", "invalid_url"),
        ("https://example.org/a b", "invalid_url"),
        ("https://example.org/\r\nX-Injected: 1", "invalid_url"),
    ],
)
def test_malformed_urls_are_refused_before_any_lookup(url: str, reason: str) -> None:
    with pytest.raises(WebhookTargetRefusedError) as refused:
        TargetPolicy().check(parse_target(url), no_lookup)
    assert refused.value.reason == reason


def test_plain_http_is_refused_without_a_lookup_unless_allowed() -> None:
    with pytest.raises(WebhookTargetRefusedError) as refused:
        TargetPolicy().check(parse_target("http://hooks.example.org/x"), no_lookup)
    assert refused.value.reason == "plain_http"
    allowed = TargetPolicy(allowed=parse_allowlist("hooks.example.org"))
    resolve = resolving_to(str(PUBLIC))
    assert allowed.check(parse_target("http://hooks.example.org/x"), resolve) == (PUBLIC,)  # type: ignore[arg-type]


def test_a_name_is_refused_if_any_address_it_resolves_to_is_inside() -> None:
    resolve = resolving_to(str(PUBLIC), "10.1.2.3")
    with pytest.raises(WebhookTargetRefusedError):
        TargetPolicy().check(parse_target("https://hooks.example.org/"), resolve)  # type: ignore[arg-type]
    only_public = resolving_to(str(PUBLIC), str(PUBLIC_V4))
    assert TargetPolicy().check(parse_target("https://hooks.example.org/"), only_public) == (  # type: ignore[arg-type]
        PUBLIC,
        PUBLIC_V4,
    )


def test_an_unresolvable_host_is_refused() -> None:
    def fails(host: str, port: int) -> Sequence[IpAddress]:
        raise OSError("no such host")

    with pytest.raises(WebhookTargetRefusedError) as refused:
        TargetPolicy().check(parse_target("https://nowhere.example/"), fails)
    assert refused.value.reason == "unresolvable"


def test_the_allowlist_opens_exact_exceptions() -> None:
    policy = TargetPolicy(allowed=parse_allowlist("127.0.0.1:8443, localhost, 10.20.0.0/16"))
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.check(parse_target("http://127.0.0.1:8443/"), no_lookup) == (loopback,)
    # The same address at another port, or spelled differently at another port: refused.
    for url in ("http://127.0.0.1:8444/", "https://127.1:9000/"):
        with pytest.raises(WebhookTargetRefusedError):
            policy.check(parse_target(url), no_lookup)
    resolve = resolving_to("127.0.0.1")
    assert policy.check(parse_target("http://localhost:5000/"), resolve) == (loopback,)  # type: ignore[arg-type]
    inside = ipaddress.ip_address("10.20.3.4")
    assert policy.check(parse_target("http://10.20.3.4/"), no_lookup) == (inside,)
    with pytest.raises(WebhookTargetRefusedError):
        policy.check(parse_target("https://10.21.0.1/"), no_lookup)


def test_the_platforms_own_listeners_stay_refused_whatever_the_allowlist() -> None:
    listeners = listeners_of(["127.0.0.1:9092", "http://127.0.0.1:8081", "0.0.0.0:9464"], no_lookup)
    policy = TargetPolicy(
        allowed=parse_allowlist("127.0.0.1, localhost, 0.0.0.0/0"), listeners=lambda: listeners
    )
    for url in (
        "http://127.0.0.1:9092/",
        "http://127.0.0.2:8081/",
        "http://localhost:8081/",
        "http://0.0.0.0:9092/",
        "http://[::ffff:127.0.0.1]:8081/",
        "http://192.0.2.1:9464/",
    ):
        with pytest.raises(WebhookTargetRefusedError) as refused:
            policy.check(parse_target(url), resolving_to("127.0.0.1"))  # type: ignore[arg-type]
        assert refused.value.reason == "platform_listener", url
    assert policy.check(parse_target("http://127.0.0.1:7000/"), no_lookup)


def test_listener_coverage() -> None:
    loopback = Listener(ipaddress.ip_address("127.0.0.1"), 80)
    assert loopback.covers(ipaddress.ip_address("127.9.9.9"), 80)
    assert not loopback.covers(ipaddress.ip_address("127.0.0.1"), 81)
    assert not loopback.covers(PUBLIC, 80)


def test_address_classes() -> None:
    assert address_refusal(PUBLIC_V4) is None
    assert address_refusal(ipaddress.ip_address("2001:4860:4860::8888")) is None
    assert address_refusal(ipaddress.ip_address("fd12::1")) == "unique-local"
    assert address_refusal(ipaddress.ip_address("::ffff:10.0.0.1")) == "private"
    assert address_refusal(ipaddress.ip_address("ff02::1")) == "multicast"


def test_bad_allowlist_entries_are_named() -> None:
    from ecoshare.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="nope/x"):
        parse_allowlist("good.example, nope/x")
    with pytest.raises(ConfigurationError, match="host/path"):
        parse_allowlist("host/path")


# -- the dispatcher's attempt: checked, pinned, never redirected -------------------------


class Recorder:
    def __init__(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.headers = headers or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers=self.headers)


def attempt(
    url: str, resolve: object, policy: TargetPolicy, recorder: Recorder
) -> tuple[bool, str | None, str]:
    with httpx.Client(transport=httpx.MockTransport(recorder), follow_redirects=False) as client:
        outcome = post_to_checked_address(
            client,
            url,
            policy,
            resolve,
            b"{}",
            {"Content-Type": "application/json"},  # type: ignore[arg-type]
        )
    return outcome.delivered, outcome.failure, outcome.detail


def test_a_name_rebound_to_an_inside_address_gets_no_request() -> None:
    recorder = Recorder()
    # Registered while it resolved to a public address; now it answers loopback.
    delivered, failure, detail = attempt(
        "https://hooks.example.org/in", resolving_to("127.0.0.1"), TargetPolicy(), recorder
    )
    assert (delivered, failure) == (False, TARGET_REFUSED)
    assert "loopback" in detail
    assert recorder.requests == []


def test_the_request_goes_to_the_checked_address_with_the_names_host_and_sni() -> None:
    recorder = Recorder()
    resolve = resolving_to(str(PUBLIC))
    delivered, failure, _ = attempt(
        "https://hooks.example.org:8443/in?x=1", resolve, TargetPolicy(), recorder
    )
    assert (delivered, failure) == (True, None)
    (request,) = recorder.requests
    assert request.url.host == str(PUBLIC) and request.url.port == 8443
    assert request.url.raw_path == b"/in?x=1"
    assert request.headers["Host"] == "hooks.example.org:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.org"
    assert resolve.calls == ["hooks.example.org"]  # type: ignore[attr-defined]


def test_redirects_are_not_followed_and_failures_are_generic() -> None:
    recorder = Recorder(302, {"Location": "http://127.0.0.1:8080/v1/partners"})
    delivered, failure, detail = attempt(
        "https://hooks.example.org/", resolving_to(str(PUBLIC)), TargetPolicy(), recorder
    )
    assert (delivered, failure) == (False, DELIVERY_FAILED)
    assert detail == "HTTP 302"
    assert len(recorder.requests) == 1
