"""The webhook delivery loop: signing, retries with backoff, dead letters, what a partner sees.

No broker and no network: one delivery worker runs against a stand-in dispatcher (the
dead-letter sink records what it is given), deliveries are in-memory messages, the
resolver is a fake and requests go to an httpx MockTransport that answers as scripted.
Backoff waits are recorded, not slept.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecoshare.adapters.kafka.errors import WriteNotAcknowledgedError
from ecoshare.codec.framed import MessageDecodeError
from ecoshare.config.topics import TopicNames
from ecoshare.webhooks.dispatcher import (
    DELIVERY_FAILED,
    TARGET_REFUSED,
    WebhookDispatcher,
    WebhookPolicy,
    WebhookState,
    _WebhookWorker,
)
from ecoshare.webhooks.registration import WebhookRecord, webhook_secret
from ecoshare.webhooks.targets import IpAddress, TargetPolicy
from tests.unit.governed import IngressRecord

MASTER_SECRET = b"m" * 32
RECORD = WebhookRecord(
    webhook_id="wh_0123456789abcdef",
    subscriber="carrier-north",
    event_type="StoreStatusChanged",
    url="https://hooks.carrier.example/ecoshare",
    created_at=datetime(2020, 3, 16, 8, 0, tzinfo=UTC),
    secret_nonce="ab" * 16,
)
DELIVERED_RECORD = {"location_id": "postnl-sp-0001", "status": "CLOSED"}


def resolve_public(host: str, port: int) -> Sequence[IpAddress]:
    return [ipaddress.ip_address("9.9.9.9")]  # public; only the MockTransport answers


def resolve_private(host: str, port: int) -> Sequence[IpAddress]:
    return [ipaddress.ip_address("10.0.0.7")]


def delivery(payload: bytes | None = b"framed") -> IngressRecord:
    """A message of a delivery topic (offset 41 of partition 2), as consumed."""
    return IngressRecord(
        topic_name="deliver.carrier-north.StoreStatusChanged",
        value_bytes=payload,
        header_list=[("ecoshare-event-id", b"e-1"), ("ecoshare-agreement", b"a-1")],
        offset_number=41,
        partition_number=2,
    )


class FakeDecoder:
    def decode(self, value: bytes | None) -> dict[str, Any]:
        if value != b"framed":
            raise MessageDecodeError("not a framed Avro record")
        return dict(DELIVERED_RECORD)


@dataclass
class FakeDispatcher:
    """What a delivery worker reads from its dispatcher; dead letters are recorded."""

    policy: WebhookPolicy
    resolve: Callable[[str, int], Sequence[IpAddress]] = resolve_public
    targets: TargetPolicy = field(default_factory=TargetPolicy)
    names: TopicNames = field(default_factory=TopicNames)
    decoder: FakeDecoder = field(default_factory=FakeDecoder)
    master_secret: bytes = MASTER_SECRET
    dead_letters: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # The next this many dead-letter writes are not acknowledged (-1: none ever is).
    unacknowledged_writes: int = 0
    reader: FakeGroupReader | None = None

    def dead_letter(self, webhook_id: str, value: dict[str, Any]) -> None:
        if self.unacknowledged_writes:
            self.unacknowledged_writes -= 1
            raise WriteNotAcknowledgedError(f"could not write {webhook_id!r}: timed out")
        self.dead_letters.append((webhook_id, value))

    def open_reader(self, group_id: str, topic: str) -> FakeGroupReader:
        assert self.reader is not None
        self.reader.opened = (group_id, topic)
        return self.reader


@dataclass
class FakeGroupReader:
    """A delivery topic read in a group: hands out ``messages``, records commits, and
    stops the worker (through ``stop``) once every message was handed out."""

    messages: list[IngressRecord]
    stop: RecordedWaits
    commits: list[IngressRecord] = field(default_factory=list)
    opened: tuple[str, str] | None = None
    closed: bool = False

    def poll(self, timeout_seconds: float) -> IngressRecord | None:
        if self.messages:
            return self.messages.pop(0)
        self.stop.set()
        return None

    def commit(self, message: IngressRecord) -> None:
        self.commits.append(message)

    def close(self) -> None:
        self.closed = True


class RecordedWaits:
    """Stands in for the worker's stop event: backoff waits are recorded, not slept."""

    def __init__(self, stop_after_waits: int | None = None) -> None:
        self.waits: list[float] = []
        self._stop_after = stop_after_waits
        self._stopped = False

    def is_set(self) -> bool:
        return self._stopped

    def set(self) -> None:
        self._stopped = True

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        if self._stop_after is not None and len(self.waits) >= self._stop_after:
            self._stopped = True
        return self._stopped


@dataclass
class ScriptedReceiver:
    """Answers the n-th request with the n-th status (the last one repeats)."""

    statuses: list[int]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        return httpx.Response(status)


def _worker(
    dispatcher: FakeDispatcher, waits: RecordedWaits | None = None
) -> tuple[_WebhookWorker, RecordedWaits]:
    worker = _WebhookWorker(cast(WebhookDispatcher, dispatcher), RECORD)
    recorded = waits or RecordedWaits()
    worker._stop = recorded  # type: ignore[assignment]
    return worker, recorded


def _deliver(worker: _WebhookWorker, receiver: ScriptedReceiver, message: IngressRecord) -> bool:
    with httpx.Client(transport=httpx.MockTransport(receiver)) as client:
        return worker._deliver(client, message)  # type: ignore[arg-type]


def test_a_delivery_is_posted_once_signed_and_settled() -> None:
    dispatcher = FakeDispatcher(WebhookPolicy())
    worker, waits = _worker(dispatcher)
    receiver = ScriptedReceiver([204])
    assert _deliver(worker, receiver, delivery()) is True
    [request] = receiver.requests
    # Connected to the checked address, named by Host.
    assert request.url.host == "9.9.9.9"
    assert request.headers["Host"] == "hooks.carrier.example"
    assert request.headers["X-Ecoshare-Webhook-Id"] == RECORD.webhook_id
    assert request.headers["X-Ecoshare-Delivery-Id"] == (
        "deliver.carrier-north.StoreStatusChanged:2:41"
    )
    assert request.headers["X-Ecoshare-Attempt"] == "1"
    secret = webhook_secret(MASTER_SECRET, RECORD)
    expected = hmac.new(secret.encode(), request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-Ecoshare-Signature"] == f"sha256={expected}"
    body = json.loads(request.content)
    assert body["webhook_id"] == RECORD.webhook_id
    assert body["subscriber"] == "carrier-north"
    assert body["event_id"] == "e-1"
    assert body["agreement"] == "a-1"
    assert body["offset"] == 41
    assert body["record"] == DELIVERED_RECORD
    state = worker.state.to_json()
    assert state["delivered"] == 1
    assert state["failed_attempts"] == 0
    assert state["status"] == "waiting"
    assert state["last_delivered_at"] is not None
    assert waits.waits == []
    assert dispatcher.dead_letters == []


def test_failed_attempts_are_retried_with_growing_backoff_until_one_succeeds() -> None:
    dispatcher = FakeDispatcher(WebhookPolicy(max_attempts=5, backoff_seconds=0.5))
    worker, waits = _worker(dispatcher)
    receiver = ScriptedReceiver([500, 503, 200])
    assert _deliver(worker, receiver, delivery()) is True
    assert [r.headers["X-Ecoshare-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    # The body, and so the signature, is the same on every attempt.
    assert len({r.content for r in receiver.requests}) == 1
    assert waits.waits == [0.5, 1.0]
    state = worker.state.to_json()
    assert state["delivered"] == 1
    assert state["failed_attempts"] == 2
    assert state["consecutive_failures"] == 0  # reset by the success
    assert state["last_error"] is None


def test_a_delivery_refused_every_time_goes_to_the_dead_letter_topic() -> None:
    dispatcher = FakeDispatcher(WebhookPolicy(max_attempts=3, backoff_seconds=1.0))
    worker, waits = _worker(dispatcher)
    receiver = ScriptedReceiver([502])
    assert _deliver(worker, receiver, delivery()) is True  # settled: it may be committed
    assert len(receiver.requests) == 3
    assert waits.waits == [1.0, 2.0]  # none after the last attempt
    [(webhook_id, letter)] = dispatcher.dead_letters
    assert webhook_id == RECORD.webhook_id
    assert letter["attempts"] == 3
    assert letter["last_error"] == "HTTP 502"
    assert letter["url"] == RECORD.url
    assert letter["delivery_id"] == "deliver.carrier-north.StoreStatusChanged:2:41"
    assert letter["body"]["record"] == DELIVERED_RECORD
    state = worker.state.to_json()
    assert state["dead_lettered"] == 1
    assert state["failed_attempts"] == 3
    assert state["consecutive_failures"] == 3
    # The partner sees a generic failure class, not what the receiver answered.
    assert state["last_error"] == DELIVERY_FAILED


def test_a_target_that_turned_private_is_refused_without_a_request() -> None:
    dispatcher = FakeDispatcher(WebhookPolicy(max_attempts=2), resolve=resolve_private)
    worker, _ = _worker(dispatcher)
    receiver = ScriptedReceiver([200])
    assert _deliver(worker, receiver, delivery()) is True
    assert receiver.requests == []
    [(_, letter)] = dispatcher.dead_letters
    assert letter["last_error"].startswith("address_not_allowed: ")
    state = worker.state.to_json()
    assert state["last_error"] == TARGET_REFUSED
    assert "10.0.0.7" not in json.dumps(state, default=str)


def test_an_undecodable_delivery_is_dead_lettered_at_once() -> None:
    dispatcher = FakeDispatcher(WebhookPolicy())
    worker, waits = _worker(dispatcher)
    receiver = ScriptedReceiver([200])
    assert _deliver(worker, receiver, delivery(b"\x00garbage")) is True
    assert waits.waits == []
    assert receiver.requests == []
    [(_, letter)] = dispatcher.dead_letters
    assert letter["attempts"] == 0
    assert letter["body"] is None
    assert letter["last_error"].startswith("undecodable delivery: ")
    assert worker.state.to_json()["dead_lettered"] == 1


def test_a_stop_during_backoff_leaves_the_delivery_unsettled() -> None:
    dispatcher = FakeDispatcher(WebhookPolicy(max_attempts=6))
    worker, waits = _worker(dispatcher, RecordedWaits(stop_after_waits=2))
    receiver = ScriptedReceiver([500])
    # Not settled: not committed, so the next consumer of the group delivers it again.
    assert _deliver(worker, receiver, delivery()) is False
    assert len(receiver.requests) == 2
    assert len(waits.waits) == 2
    assert dispatcher.dead_letters == []


def test_a_stopped_worker_makes_no_new_attempt() -> None:
    dispatcher = FakeDispatcher(WebhookPolicy())
    worker, waits = _worker(dispatcher)
    waits.set()
    receiver = ScriptedReceiver([200])
    assert _deliver(worker, receiver, delivery()) is False
    assert receiver.requests == []


def _run_over(
    dispatcher: FakeDispatcher, message: IngressRecord, waits: RecordedWaits
) -> _WebhookWorker:
    """The worker's whole loop over one delivery, until the reader has no more."""
    dispatcher.reader = FakeGroupReader([message], waits)
    worker, _ = _worker(dispatcher, waits)
    worker._run()
    return worker


def test_a_dead_letter_the_cluster_did_not_acknowledge_leaves_the_delivery_uncommitted() -> None:
    # The target is refused (no request leaves the test), so the delivery goes straight
    # to the dead-letter topic, whose writes are never acknowledged.
    dispatcher = FakeDispatcher(
        WebhookPolicy(max_attempts=1, backoff_seconds=0.5),
        resolve=resolve_private,
        unacknowledged_writes=-1,
    )
    waits = RecordedWaits(stop_after_waits=3)
    worker = _run_over(dispatcher, delivery(), waits)
    reader = dispatcher.reader
    assert reader is not None
    assert reader.opened == (
        f"ecoshare-webhook-{RECORD.webhook_id}",
        "deliver.carrier-north.StoreStatusChanged",
    )
    # Tried again with a growing backoff until stopped; never committed, never counted.
    assert waits.waits == [0.5, 1.0, 2.0]
    assert reader.commits == []
    assert dispatcher.dead_letters == []
    assert reader.closed
    state = worker.state.to_json()
    assert state["dead_lettered"] == 0
    assert state["status"] == "stopped"


def test_a_dead_letter_acknowledged_on_a_later_try_settles_and_commits_the_delivery() -> None:
    dispatcher = FakeDispatcher(
        WebhookPolicy(max_attempts=1, backoff_seconds=0.5),
        resolve=resolve_private,
        unacknowledged_writes=2,
    )
    waits = RecordedWaits()
    message = delivery()
    _run_over(dispatcher, message, waits)
    assert waits.waits == [0.5, 1.0]
    [(_, letter)] = dispatcher.dead_letters
    assert letter["delivery_id"] == "deliver.carrier-north.StoreStatusChanged:2:41"
    assert dispatcher.reader is not None
    assert dispatcher.reader.commits == [message]


@given(
    base=st.floats(0.001, 10.0),
    cap=st.floats(0.001, 100.0),
    attempt=st.integers(1, 40),
)
def test_backoff_doubles_per_attempt_and_never_passes_its_cap(
    base: float, cap: float, attempt: int
) -> None:
    policy = WebhookPolicy(backoff_seconds=base, backoff_max_seconds=cap)
    assert policy.backoff(1) == min(cap, base)
    assert 0 < policy.backoff(attempt) <= cap
    assert policy.backoff(attempt + 1) >= policy.backoff(attempt)
    if policy.backoff(attempt + 1) < cap:
        assert policy.backoff(attempt + 1) == pytest.approx(2 * policy.backoff(attempt))


def test_the_state_a_partner_reads_lists_every_counter() -> None:
    state = WebhookState(delivered=3, dead_lettered=1, last_error=DELIVERY_FAILED)
    assert state.to_json() == {
        "status": "starting",
        "delivered": 3,
        "failed_attempts": 0,
        "consecutive_failures": 0,
        "dead_lettered": 1,
        "last_error": DELIVERY_FAILED,
        "last_attempt_at": None,
        "last_delivered_at": None,
    }
