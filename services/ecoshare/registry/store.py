"""The registry's state, kept in a compacted single-partition Kafka topic.

Writers produce one record per mutation and wait for the broker's acknowledgement. A
background thread tails the topic from its first offset (an assigned partition, no
consumer group, so there is no group join to wait for) and folds every record into a
:class:`~ecoshare.registry.state.RegistryState`.

"Read to the end" never asks the broker for offsets: the embedded broker reports too low
a watermark after multi-record batches. Instead :meth:`KafkaSchemaStore.catch_up`
produces a NOOP record carrying a fresh uuid and waits until the tailer has applied it;
everything acknowledged before the marker sits at a lower offset, so once the marker is
applied so is every earlier write, this instance's or another's. Confluent's registry
does the same.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from ecoshare.adapters.kafka_admin import TopicSpec, ensure_topics, wait_for_cluster
from ecoshare.registry.errors import StoreError, StoreTimeoutError
from ecoshare.registry.state import (
    MalformedRecordError,
    RegistryState,
    encode_json,
    noop_key,
)

logger = logging.getLogger(__name__)

DEFAULT_TOPIC = "_schemas"
_PARTITION = 0


class KafkaSchemaStore:
    """Registry state backed by ``topic``; start() before use, close() when done.

    Thread-safe: request threads call :meth:`write`, :meth:`catch_up` and :meth:`read`
    concurrently while the tailer thread applies records.
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
        self._markers: dict[str, threading.Event] = {}
        self._markers_lock = threading.Lock()
        self._stopping = threading.Event()
        self._tailer: threading.Thread | None = None
        self._tailer_failure: BaseException | None = None
        self._producer: Producer | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> KafkaSchemaStore:
        """Create the topic if missing, start tailing it and catch up with its content.

        Raises BrokerUnavailableError, TopicCreationError or StoreError.
        """
        wait_for_cluster(self.bootstrap_servers, timeout_seconds=self.timeout_seconds)
        ensure_topics(self.bootstrap_servers, [TopicSpec.compacted(self.topic)])
        self._producer = Producer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "acks": "all",
                "linger.ms": 0,
                # One record per produce request: the embedded broker misreports offsets
                # after multi-record batches, and nothing here needs throughput.
                "batch.num.messages": 1,
                "log_level": 3,
            }
        )
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                # The client insists on a group id; the group is never joined because
                # the partition is assigned, and no offset is ever committed.
                "group.id": f"ecoshare-registry-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": self._poll_interval_ms,
                "log_level": 3,
            }
        )
        consumer.assign([TopicPartition(self.topic, _PARTITION, OFFSET_BEGINNING)])
        self._tailer = threading.Thread(
            target=self._tail, args=(consumer,), name=f"registry-tailer-{self.topic}", daemon=True
        )
        self._tailer.start()
        self.catch_up()
        logger.info(
            "schema store on %s topic %s caught up: %d schemas",
            self.bootstrap_servers,
            self.topic,
            self.schema_count(),
        )
        return self

    def close(self) -> None:
        self._stopping.set()
        if self._tailer is not None:
            self._tailer.join(timeout=self.timeout_seconds)
            self._tailer = None
        if self._producer is not None:
            self._producer.flush(self.timeout_seconds)
            self._producer = None

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
        producer = self._require_producer()
        outcome: list[KafkaError | None] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            outcome.append(error)

        try:
            producer.produce(
                self.topic,
                key=encode_json(key),
                value=None if value is None else encode_json(value),
                partition=_PARTITION,
                on_delivery=on_delivery,
            )
            producer.flush(self.timeout_seconds)
        except (KafkaException, BufferError) as exc:
            raise StoreError(f"Error in the backend data store: {exc}") from exc
        if not outcome:
            raise StoreTimeoutError(
                f"Kafka did not acknowledge a write to {self.topic} within "
                f"{self.timeout_seconds:.0f}s"
            )
        if outcome[0] is not None:
            raise StoreError(f"Error in the backend data store: {outcome[0]}")

    def catch_up(self) -> None:
        """Return once every record acknowledged before this call has been applied."""
        marker = uuid.uuid4().hex
        applied = threading.Event()
        with self._markers_lock:
            self._markers[marker] = applied
        try:
            self.write(noop_key(), {"marker": marker})
            arrived = applied.wait(self.timeout_seconds)
        finally:
            with self._markers_lock:
                self._markers.pop(marker, None)
        if self._tailer_failure is not None:
            raise StoreError(f"the reader of {self.topic} stopped: {self._tailer_failure}")
        if not arrived:
            raise StoreTimeoutError(
                f"the reader of {self.topic} did not catch up within {self.timeout_seconds:.0f}s"
            )

    def _require_producer(self) -> Producer:
        if self._producer is None:
            raise StoreError(f"the store for {self.topic} is not started")
        return self._producer

    # -- tailing ----------------------------------------------------------------------

    def _tail(self, consumer: Consumer) -> None:
        try:
            while not self._stopping.is_set():
                # poll() returns as soon as a record is there; consume() would wait for a
                # full batch or its timeout, putting that delay on every catch-up.
                message = consumer.poll(0.1)
                if message is not None:
                    self._apply(message)
        except Exception as exc:
            logger.exception("the reader of %s stopped", self.topic)
            self._tailer_failure = exc
            # Wake every waiter now rather than letting them time out.
            with self._markers_lock:
                for applied in self._markers.values():
                    applied.set()
        finally:
            consumer.close()

    def _apply(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            logger.warning("reading %s: %s", self.topic, error)
            return
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
            self._mark_arrived(value)
            return
        try:
            with self._state_lock:
                self._state.apply(key, value)
        except MalformedRecordError as exc:
            logger.warning("skipping record at offset %s: %s", message.offset(), exc)

    def _mark_arrived(self, value: Mapping[str, Any] | None) -> None:
        marker = value.get("marker") if value else None
        if isinstance(marker, str):
            with self._markers_lock:
                applied = self._markers.get(marker)
            if applied is not None:
                applied.set()


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
