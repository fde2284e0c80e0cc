"""Request limits: body size (413), per-key rate (429), and request metrics."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecoshare.adapters.metrics import HttpMetrics


class RequestRateLimiter:
    """HTTP requests per caller key (partner, operator, client address): token buckets of
    ``burst`` requests at once, ``rate_per_second`` sustained, on a monotonic clock.

    Not :class:`ecoshare.domain.policy.AgreementRateLimiter`, which caps the events an
    agreement delivers, per minute and per UTC day, at the events' own time.

    Thread-safe. Buckets that have refilled completely are forgotten once more than
    ``max_keys`` are held, so keys chosen by callers (client addresses) cannot grow
    memory without bound.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, last = self._buckets.get(key, (self._burst, now))
        return min(self._burst, level + max(0.0, now - last) * self._rate)

    def wait_time(self, key: str) -> float | None:
        """Like :meth:`acquire`, without taking anything."""
        now = self._clock()
        with self._lock:
            level = self._level(key, now)
        return None if level >= 1.0 else (1.0 - level) / self._rate

    def acquire(self, key: str) -> float | None:
        """Take one request; None when allowed, else the seconds until one is."""
        now = self._clock()
        with self._lock:
            level = self._level(key, now)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                allowed = True
            else:
                self._buckets[key] = (level, now)
                allowed = False
            if len(self._buckets) > self._max_keys:
                self._buckets = {
                    name: bucket
                    for name, bucket in self._buckets.items()
                    if self._level(name, now) < self._burst
                }
            return None if allowed else (1.0 - level) / self._rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class _BodyTooLargeError(Exception):
    pass


async def _send_json(send: Send, status: int, body: dict[str, object]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_json(
                    send,
                    400,
                    {"error": "bad_request", "message": "invalid Content-Length", "details": []},
                )
                return
            if length > self.max_bytes:
                await self._too_large(send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await _send_json(
            send,
            413,
            {
                "error": "payload_too_large",
                "message": f"the request body exceeds {self.max_bytes} bytes",
                "details": [],
            },
        )


class RequestMetrics:
    """Counts and times every request under its route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)

        async def timing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # Streams run for minutes; the duration is to the response start.
                observe()
            await send(message)

        try:
            await self.app(scope, receive, timing_send)
        finally:
            observe()
