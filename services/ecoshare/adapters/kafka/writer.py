"""The one acknowledged writer: a record is written when the cluster says so, not before.

Every platform write of a state record (control records, API keys, webhooks, the
registry's schemas) goes through :class:`AcknowledgedWriter`: produce one record, wait
for its delivery report, and either return where it was written or raise
:class:`~ecoshare.adapters.kafka.errors.WriteNotAcknowledgedError`. The hot path
(the governance workers, the SDK publisher) batches instead and does not use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from ecoshare.adapters.kafka.config import acknowledged_writer_config
from ecoshare.adapters.kafka.errors import (
    AcknowledgementTimeoutError,
    WriteNotAcknowledgedError,
)

__all__ = ["AcknowledgedWriter", "ProducerLike", "Written"]


class ProducerLike(Protocol):
    """The part of confluent-kafka's Producer the writer uses (a fake in unit tests)."""

    def produce(self, topic: str, **kwargs: Any) -> None: ...

    def flush(self, timeout: float = ...) -> int: ...


@dataclass(frozen=True, slots=True)
class Written:
    """Where an acknowledged record was written."""

    topic: str
    partition: int
    offset: int


class AcknowledgedWriter:
    """Writes one record at a time and returns once the cluster acknowledged it.

    Thread-safe: calls are serialised, so each produce request carries one record and
    the position returned belongs to the caller's record.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        timeout_seconds: float = 10.0,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self._timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._producer: ProducerLike = producer_factory(
            acknowledged_writer_config(bootstrap_servers)
        )

    def write(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Written:
        """Write one record (``value`` None is a tombstone) and wait for its acknowledgement.

        Raises WriteNotAcknowledgedError when the client refuses the record or the broker
        reports an error for it, and its AcknowledgementTimeoutError when no report
        arrives within the timeout.
        """
        outcome: list[tuple[KafkaError | None, int, int]] = []

        def on_delivery(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                outcome.append((error, -1, -1))
            else:
                outcome.append((None, int(message.partition()), int(message.offset())))

        where = f"{topic}" if partition is None else f"{topic}[{partition}]"
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        if headers:
            extra["headers"] = headers
        with self._lock:
            try:
                self._producer.produce(
                    topic, key=key, value=value, on_delivery=on_delivery, **extra
                )
            except (KafkaException, BufferError) as exc:
                raise WriteNotAcknowledgedError(
                    f"could not write {key!r} to {where}: {exc}"
                ) from exc
            remaining = self._producer.flush(self._timeout_seconds)
        if remaining or not outcome:
            raise AcknowledgementTimeoutError(
                f"{key!r} was not acknowledged by {where} within {self._timeout_seconds:.0f}s"
            )
        error, written_partition, offset = outcome[0]
        if error is not None:
            raise WriteNotAcknowledgedError(f"could not write {key!r} to {where}: {error}")
        return Written(topic, written_partition, offset)

    def close(self) -> None:
        with self._lock:
            self._producer.flush(self._timeout_seconds)

    def __enter__(self) -> AcknowledgedWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
