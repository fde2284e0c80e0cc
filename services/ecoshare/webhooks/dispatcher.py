"""Pushing governed deliveries to webhooks, one background thread per webhook.

Each webhook consumes its subscriber's delivery topic in its own consumer group
(``<prefix>ecoshare-webhook-<id>``, a
:class:`~ecoshare.adapters.kafka.group_reader.GroupReader`, ``read_committed``), from
the start of the topic, in order per partition. A delivery is committed only after the
receiver answered 2xx, or after its dead letter was acknowledged by the cluster
(:class:`~ecoshare.adapters.kafka.writer.AcknowledgedWriter`): at least once, never
silently lost. A failed attempt is retried after ``backoff * 2**(attempt - 1)`` seconds
(capped), up to ``max_attempts`` attempts. Several API instances share a webhook's
partitions through the group; the counters of :class:`WebhookState` are those of this
instance.

Every attempt checks the target again (:mod:`ecoshare.webhooks.targets`) and connects
to an address it checked, with ``Host`` and TLS SNI of the registered name; redirects
are not followed. The state a partner sees names only a generic failure class
(``delivery_failed``, ``target_refused``), never what answered: status codes, timeouts
and refusals of a receiver would otherwise tell what listens where. The detail goes to
the API log and the dead letter, both the operator's.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from confluent_kafka import Message

from ecoshare.adapters.kafka.errors import KafkaIoError, WriteNotAcknowledgedError
from ecoshare.adapters.kafka.group_reader import GroupReader
from ecoshare.adapters.kafka.reading import header_map
from ecoshare.adapters.kafka.writer import AcknowledgedWriter
from ecoshare.codec.event_json import delivery_to_json
from ecoshare.codec.framed import FramedDecoder, MessageDecodeError
from ecoshare.config.topics import TopicNames
from ecoshare.webhooks.registration import (
    ATTEMPT_HEADER,
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    WebhookRecord,
    dead_letter_topic,
    sign_body,
    webhook_secret,
)
from ecoshare.webhooks.targets import (
    Resolver,
    TargetPolicy,
    WebhookTarget,
    WebhookTargetRefusedError,
    parse_target,
    system_resolver,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookPolicy:
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    timeout_seconds: float = 5.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1)))


@dataclass
class WebhookState:
    """What one webhook's deliveries did, as seen by this API instance."""

    status: str = "starting"
    delivered: int = 0
    failed_attempts: int = 0
    consecutive_failures: int = 0
    dead_lettered: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    last_delivered_at: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "status": self.status,
                "delivered": self.delivered,
                "failed_attempts": self.failed_attempts,
                "consecutive_failures": self.consecutive_failures,
                "dead_lettered": self.dead_lettered,
                "last_error": self.last_error,
                "last_attempt_at": self.last_attempt_at,
                "last_delivered_at": self.last_delivered_at,
            }


DELIVERY_FAILED = "delivery_failed"
TARGET_REFUSED = "target_refused"


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One attempt: delivered, or a generic failure class with the detail for the log."""

    delivered: bool
    failure: str | None = None
    detail: str = ""


def post_to_checked_address(
    client: httpx.Client,
    url: str,
    policy: TargetPolicy,
    resolve: Resolver,
    body: bytes,
    headers: dict[str, str],
) -> AttemptOutcome:
    """POST ``body`` to ``url`` through an address the policy checked just now.

    Nothing is sent when the check refuses. The connection goes to the checked address
    itself, so a name that resolves differently a moment later (DNS rebinding) is never
    looked up again; the name travels in ``Host`` and, for https, in SNI, against which
    the certificate is verified.
    """
    try:
        target: WebhookTarget = parse_target(url)
        addresses = policy.check(target, resolve)
    except WebhookTargetRefusedError as exc:
        return AttemptOutcome(False, TARGET_REFUSED, f"{exc.reason}: {exc.message}")
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    detail = ""
    for address in addresses:
        try:
            response = client.post(
                target.url_for(address),
                content=body,
                headers={**headers, "Host": target.host_header},
                extensions=extensions,
            )
        except httpx.ConnectError as exc:
            detail = f"{address}: {type(exc).__name__}: {exc}"
            continue  # the next checked address, if any
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return AttemptOutcome(False, DELIVERY_FAILED, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return AttemptOutcome(True)
        return AttemptOutcome(False, DELIVERY_FAILED, f"HTTP {response.status_code}")
    return AttemptOutcome(False, DELIVERY_FAILED, detail or "no address answered")


class _WebhookWorker:
    def __init__(self, dispatcher: WebhookDispatcher, record: WebhookRecord) -> None:
        self.record = record
        self.state = WebhookState()
        self._dispatcher = dispatcher
        self._secret = webhook_secret(dispatcher.master_secret, record)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"webhook-{record.webhook_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _set(self, **changes: Any) -> None:
        with self.state.lock:
            for name, value in changes.items():
                setattr(self.state, name, value)

    def _run(self) -> None:
        dispatcher = self._dispatcher
        topic = dispatcher.names.delivery(self.record.subscriber, self.record.event_type)
        reader = dispatcher.open_reader(
            f"{dispatcher.names.prefix}ecoshare-webhook-{self.record.webhook_id}", topic
        )
        # No proxy from the environment: the connection must go to the checked address.
        client = httpx.Client(
            timeout=dispatcher.policy.timeout_seconds, follow_redirects=False, trust_env=False
        )
        try:
            self._set(status="waiting")
            while not self._stop.is_set():
                message = reader.poll(0.5)
                if message is not None and self._deliver(client, message):
                    reader.commit(message)
        except KafkaIoError as exc:
            self._set(status="failed", last_error="delivery_unavailable")
            log.error("webhook %s stopped: %s", self.record.webhook_id, exc)
        finally:
            client.close()
            reader.close()
            with self.state.lock:
                if self.state.status != "failed":
                    self.state.status = "stopped"

    def _body(self, message: Message) -> bytes | str:
        headers = header_map(message.headers())
        try:
            record = self._dispatcher.decoder.decode(message.value())
        except MessageDecodeError as exc:
            return str(exc)
        payload = {
            "webhook_id": self.record.webhook_id,
            "subscriber": self.record.subscriber,
            "event_type": self.record.event_type,
            **delivery_to_json(
                topic=str(message.topic()),
                partition=int(message.partition() or 0),
                offset=int(message.offset() or 0),
                headers=headers,
                record=record,
            ),
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def _deliver(self, client: httpx.Client, message: Message) -> bool:
        """True once the delivery is settled (2xx or dead-lettered); False if stopped."""
        policy = self._dispatcher.policy
        delivery_id = f"{message.topic()}:{message.partition()}:{message.offset()}"
        body = self._body(message)
        if isinstance(body, str):
            return self._dead_letter(message, delivery_id, None, f"undecodable delivery: {body}", 0)
        signature = sign_body(self._secret, body)
        last_error = ""
        for attempt in range(1, policy.max_attempts + 1):
            if self._stop.is_set():
                # Stopped (removed, its key revoked, its partner disabled): no new attempt.
                return False
            self._set(status="delivering", last_attempt_at=datetime.now(UTC))
            outcome = post_to_checked_address(
                client,
                self.record.url,
                self._dispatcher.targets,
                self._dispatcher.resolve,
                body,
                {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature,
                    WEBHOOK_ID_HEADER: self.record.webhook_id,
                    DELIVERY_ID_HEADER: delivery_id,
                    ATTEMPT_HEADER: str(attempt),
                    "User-Agent": "ecoshare-webhooks",
                },
            )
            if outcome.delivered:
                with self.state.lock:
                    self.state.delivered += 1
                    self.state.consecutive_failures = 0
                    self.state.last_error = None
                    self.state.last_delivered_at = datetime.now(UTC)
                    self.state.status = "waiting"
                return True
            last_error = outcome.detail
            log.info(
                "webhook %s attempt %d failed (%s): %s",
                self.record.webhook_id,
                attempt,
                outcome.failure,
                outcome.detail,
            )
            with self.state.lock:
                self.state.failed_attempts += 1
                self.state.consecutive_failures += 1
                self.state.last_error = outcome.failure
                self.state.status = "retrying"
            if attempt < policy.max_attempts and self._stop.wait(policy.backoff(attempt)):
                return False
        return self._dead_letter(message, delivery_id, body, last_error, policy.max_attempts)

    def _dead_letter(
        self, message: Message, delivery_id: str, body: bytes | None, error: str, attempts: int
    ) -> bool:
        """Write the dead letter and wait for its acknowledgement: True once written.

        A write that is not acknowledged is tried again after a backoff, for as long as
        the worker runs; False when it was stopped first, so the delivery's offset is not
        committed and the delivery is read again by whoever takes the partition over.
        """
        value = {
            "webhook_id": self.record.webhook_id,
            "subscriber": self.record.subscriber,
            "event_type": self.record.event_type,
            "url": self.record.url,
            "delivery_id": delivery_id,
            "attempts": attempts,
            "last_error": error,
            "dead_lettered_at": datetime.now(UTC).isoformat(),
            "body": json.loads(body) if body else None,
        }
        policy = self._dispatcher.policy
        failures = 0
        while True:
            try:
                self._dispatcher.dead_letter(self.record.webhook_id, value)
                break
            except WriteNotAcknowledgedError as exc:
                failures += 1
                log.error(
                    "webhook %s: dead letter of %s not written (try %d): %s",
                    self.record.webhook_id,
                    delivery_id,
                    failures,
                    exc,
                )
                self._set(status="retrying")
                if self._stop.wait(policy.backoff(failures)):
                    return False
        with self.state.lock:
            self.state.dead_lettered += 1
            self.state.status = "waiting"
        return True


class WebhookDispatcher:
    """Runs one delivery thread per registered webhook; :meth:`reconcile` follows changes."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        names: TopicNames,
        decoder: FramedDecoder,
        master_secret: bytes,
        policy: WebhookPolicy,
        targets: TargetPolicy | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.targets = targets or TargetPolicy()
        self.resolve = resolve
        self.names = names
        self.decoder = decoder
        self.master_secret = master_secret
        self.policy = policy
        self._workers: dict[str, _WebhookWorker] = {}
        self._retired: list[_WebhookWorker] = []
        self._states: dict[str, WebhookState] = {}
        self._lock = threading.Lock()
        self._dead_letters = AcknowledgedWriter(bootstrap_servers)

    def reconcile(self, records: Iterable[WebhookRecord]) -> None:
        """Run exactly the given webhooks: start new ones, stop removed or changed ones."""
        wanted = {record.webhook_id: record for record in records}
        with self._lock:
            for webhook_id, worker in list(self._workers.items()):
                if wanted.get(webhook_id) != worker.record:
                    worker.request_stop()
                    self._retired.append(worker)
                    del self._workers[webhook_id]
            for webhook_id, record in wanted.items():
                if webhook_id not in self._workers:
                    worker = _WebhookWorker(self, record)
                    self._workers[webhook_id] = worker
                    self._states[webhook_id] = worker.state
                    worker.start()
            for webhook_id in list(self._states):
                if webhook_id not in wanted:
                    del self._states[webhook_id]

    def state(self, webhook_id: str) -> WebhookState | None:
        with self._lock:
            return self._states.get(webhook_id)

    def open_reader(self, group_id: str, topic: str) -> GroupReader:
        """A reader of one webhook's delivery topic in its own consumer group."""
        return GroupReader(self.bootstrap_servers, group_id, topic)

    def dead_letter(self, webhook_id: str, value: dict[str, Any]) -> None:
        """Keep a refused delivery on the dead-letter topic (keyed by webhook id).

        Returns once the cluster acknowledged it; raises WriteNotAcknowledgedError when
        it did not, and the delivery must then not be committed.
        """
        self._dead_letters.write(
            dead_letter_topic(self.names),
            webhook_id.encode(),
            json.dumps(value, default=str).encode(),
            headers=[("ecoshare-webhook-id", webhook_id.encode())],
        )

    def stop(self) -> None:
        with self._lock:
            workers = [*self._workers.values(), *self._retired]
            self._workers.clear()
            self._retired.clear()
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            worker.join(10)
        self._dead_letters.close()
