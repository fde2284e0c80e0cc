"""Consume a subscriber's governed delivery topic."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError, Message

from ecoshare.adapters.kafka.config import group_consumer_config
from ecoshare.adapters.kafka.reading import header_map
from ecoshare.codec.errors import CodecError
from ecoshare.codec.wire import HEADER_SIZE, schema_id_of
from ecoshare.config.topics import TopicNames
from ecoshare.sdk._schemas import RegistrySchemas
from ecoshare.sdk.errors import DeliveryDecodeError


@dataclass(frozen=True, slots=True)
class Delivery:
    """One governed record as the subscriber receives it."""

    record: dict[str, Any]
    key: bytes | None
    headers: dict[str, bytes]
    topic: str
    partition: int
    offset: int

    @property
    def event_id(self) -> str | None:
        raw = self.headers.get("ecoshare-event-id")
        return raw.decode() if raw else None


class Subscriber:
    """Reads ``deliver.<subscriber>.<event type>`` and decodes each record.

    Offsets are committed only after the handler returns (or, when iterating, when
    the next record is asked for), so a crash re-delivers what was not handled.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        schema_registry_url: str,
        subscriber_id: str,
        event_type: str,
        group_id: str | None = None,
        topic: str | None = None,
        topic_prefix: str = "",
        from_beginning: bool = True,
        session_timeout_ms: int = 6000,
    ) -> None:
        self.topic = topic or TopicNames(topic_prefix).delivery(subscriber_id, event_type)
        self._registry = RegistrySchemas(schema_registry_url)
        self._consumer = Consumer(
            group_consumer_config(
                bootstrap_servers,
                group_id or f"{subscriber_id}.{event_type}.{uuid.uuid4().hex[:8]}",
                # Only what a worker's transaction committed (Apache Kafka); a batch a
                # fenced worker aborted is never seen.
                read_committed=True,
                session_timeout_ms=session_timeout_ms,
                from_beginning=from_beginning,
                # The delivery topic appears when the first record is governed for it.
                overrides={"topic.metadata.refresh.interval.ms": 1000},
            )
        )
        self._consumer.subscribe([self.topic])
        self._uncommitted: Message | None = None

    def decode(self, message: Message) -> Delivery:
        value = message.value() or b""
        try:
            parsed = self._registry.parsed(schema_id_of(value))
            record: Any = fastavro.schemaless_reader(io.BytesIO(value[HEADER_SIZE:]), parsed, None)
        except (CodecError, ValueError, EOFError, KeyError) as exc:
            raise DeliveryDecodeError(
                f"{message.topic()}[{message.partition()}]@{message.offset()}: {exc}"
            ) from exc
        return Delivery(
            record=dict(record),
            key=message.key(),
            headers=header_map(message.headers()),
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
        )

    def poll(self, timeout_seconds: float = 1.0) -> Delivery | None:
        """The next delivery, or None after ``timeout_seconds`` without one."""
        self.commit()
        message = self._consumer.poll(timeout_seconds)
        if message is None:
            return None
        error = message.error()
        if error is not None:
            if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                return None
            raise DeliveryDecodeError(f"{self.topic}: {error.str()}")
        self._uncommitted = message
        return self.decode(message)

    def commit(self) -> None:
        """Commit everything handed out so far."""
        if self._uncommitted is not None:
            self._consumer.commit(message=self._uncommitted, asynchronous=False)
            self._uncommitted = None

    def __iter__(self) -> Iterator[Delivery]:
        while True:
            delivery = self.poll(1.0)
            if delivery is not None:
                yield delivery

    def run(
        self,
        handler: Callable[[Delivery], None],
        *,
        max_events: int | None = None,
        idle_timeout_seconds: float | None = None,
    ) -> int:
        """Call ``handler`` per delivery, committing after each returns; the count handled."""
        import time

        handled = 0
        last_seen = time.monotonic()
        while max_events is None or handled < max_events:
            delivery = self.poll(0.5)
            if delivery is None:
                if idle_timeout_seconds and time.monotonic() - last_seen > idle_timeout_seconds:
                    break
                continue
            handler(delivery)
            self.commit()
            handled += 1
            last_seen = time.monotonic()
        return handled

    def close(self) -> None:
        self.commit()
        self._consumer.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
