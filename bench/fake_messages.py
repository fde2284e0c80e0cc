"""An in-process stand-in for a consumed ingress message, for benchmarks of the engine.

The engine reads a message only through these methods, so a benchmark can feed it
encoded events without a broker. Slotted and method-only, as cheap to call as
confluent-kafka's own ``Message``, so that it adds nothing to the per-event figures.
"""

from __future__ import annotations

from typing import Any


class IngressMessage:
    """One message of partition ``partition`` of ``topic``, appended at ``appended_ms``."""

    __slots__ = ("_appended_ms", "_headers", "_key", "_offset", "_partition", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Any,
        offset: int,
        *,
        partition: int = 0,
        appended_ms: int = 0,
    ) -> None:
        self._topic, self._key, self._value, self._headers = topic, key, value, headers
        self._offset, self._partition, self._appended_ms = offset, partition, appended_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> Any:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._appended_ms)  # 1: TIMESTAMP_CREATE_TIME
