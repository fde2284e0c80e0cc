"""The registry's state, kept in a compacted single-partition Kafka topic.

Writers produce one record per mutation through the platform's acknowledged writer. A
:class:`~ecoshare.adapters.kafka.follower.TopicFollower` follows the topic from its
first offset and folds every record into a :class:`~ecoshare.registry.state.RegistryState`.

"Read to the end" is the follower's one rule: :meth:`KafkaSchemaStore.catch_up` waits
until the partition reported its end in a fetch answered after the call, so every write
acknowledged before it, this instance's or another's, has been applied. Watermarks are
never asked for: the embedded broker under-reports them after multi-record batches.
Earlier versions wrote NOOP marker records to catch up; those are still skipped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics, wait_for_cluster
from ecoshare.adapters.kafka.errors import (
    AcknowledgementTimeoutError,
    WriteNotAcknowledgedError,
)
from ecoshare.adapters.kafka.follower import TopicFollower
from ecoshare.adapters.kafka.writer import AcknowledgedWriter
from ecoshare.registry.errors import StoreError, StoreTimeoutError
from ecoshare.registry.state import MalformedRecordError, RegistryState, encode_json

logger = logging.getLogger(__name__)

DEFAULT_TOPIC = "_schemas"
_PARTITION = 0


class KafkaSchemaStore:
    """Registry state backed by ``topic``; start() before use, close() when done.

    Thread-safe: request threads call :meth:`write`, :meth:`catch_up` and :meth:`read`
    concurrently while the follower thread applies records.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = DEFAULT_TOPIC,
        *,
        timeout_seconds: float = 15.0,
        poll_interval_ms: int = 20,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_seconds = timeout_seconds
        self._poll_interval_ms = poll_interval_ms
        self._state = RegistryState()
        self._state_lock = threading.Lock()
        self._follower: TopicFollower | None = None
        self._writer: AcknowledgedWriter | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> KafkaSchemaStore:
        """Create the topic if missing, start following it and catch up with its content.

        Raises BrokerUnavailableError, TopicCreationError or StoreError.
        """
        wait_for_cluster(self.bootstrap_servers, timeout_seconds=self.timeout_seconds)
        ensure_topics(self.bootstrap_servers, [TopicSpec.compacted(self.topic)])
        self._writer = AcknowledgedWriter(
            self.bootstrap_servers, timeout_seconds=self.timeout_seconds
        )
        follower = TopicFollower(
            self.bootstrap_servers,
            [self.topic],
            name=f"registry-{self.topic}",
            read_committed=False,
            poll_seconds=self._poll_interval_ms / 1000,
            fetch_wait_max_ms=self._poll_interval_ms,
        )
        follower.add_fold(self)
        self._follower = follower.start(timeout_seconds=self.timeout_seconds)
        self.catch_up()
        logger.info(
            "schema store on %s topic %s caught up: %d schemas",
            self.bootstrap_servers,
            self.topic,
            self.schema_count(),
        )
        return self

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop(self.timeout_seconds)
            self._follower = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> KafkaSchemaStore:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[RegistryState]:
        """The current state, frozen for the duration of the ``with`` block. Keep it short."""
        with self._state_lock:
            yield self._state

    def schema_count(self) -> int:
        with self._state_lock:
            return self._state.schema_count

    # -- writing ----------------------------------------------------------------------

    def write(self, key: Mapping[str, Any], value: Mapping[str, Any] | None) -> None:
        """Produce one record (``value`` None = tombstone) and wait until the broker has it.

        The record is not yet applied on return; call :meth:`catch_up` to see it.
        """
        if self._writer is None:
            raise StoreError(f"the store for {self.topic} is not started")
        try:
            self._writer.write(
                self.topic,
                encode_json(key),
                None if value is None else encode_json(value),
                partition=_PARTITION,
            )
        except AcknowledgementTimeoutError as exc:
            raise StoreTimeoutError(f"Kafka did not acknowledge a write: {exc}") from exc
        except WriteNotAcknowledgedError as exc:
            raise StoreError(f"Error in the backend data store: {exc}") from exc

    def catch_up(self) -> None:
        """Return once every record acknowledged before this call has been applied."""
        follower = self._follower
        if follower is None:
            raise StoreError(f"the store for {self.topic} is not started")
        arrived = follower.catch_up(self.timeout_seconds)
        if follower.failure is not None:
            raise StoreError(f"the reader of {self.topic} stopped: {follower.failure}")
        if not arrived:
            raise StoreTimeoutError(
                f"the reader of {self.topic} did not catch up within {self.timeout_seconds:.0f}s"
            )

    # -- following --------------------------------------------------------------------

    def apply(self, message: Any) -> None:
        """Fold one record of the topic into the state (the follower calls this)."""
        try:
            key = _decode(message.key())
            value = None if message.value() is None else _decode(message.value())
        except MalformedRecordError as exc:
            logger.warning("skipping record at offset %s: %s", message.offset(), exc)
            return
        if key is None:
            logger.warning("skipping record without a key at offset %s", message.offset())
            return
        if key.get("keytype") == "NOOP":
            return
        try:
            with self._state_lock:
                self._state.apply(key, value)
        except MalformedRecordError as exc:
            logger.warning("skipping record at offset %s: %s", message.offset(), exc)


def _decode(raw: str | bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise MalformedRecordError(f"not JSON: {raw!r:.200}") from exc
    if not isinstance(document, dict):
        raise MalformedRecordError(f"not a JSON object: {raw!r:.200}")
    return document
