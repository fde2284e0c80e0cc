"""Reading a subscriber's delivery topic without a consumer group: for SSE and ``tail``.

Both the API's server-sent events and the CLI's ``ecoshare tail`` read through
:class:`DeliveryReader`, in ``read_committed``: a delivery a fenced worker's aborted
transaction wrote is never shown to anyone.

The reader assigns every partition itself (``assign()``), so it starts at once, never
rebalances and commits nothing; positions are the caller's to keep. Until the first
record is governed for a subscriber its delivery topic does not exist, and
:meth:`DeliveryReader.assign` answers False.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from ecoshare.adapters.kafka.config import reader_config
from ecoshare.adapters.kafka.reading import header_map
from ecoshare.codec.event_json import delivery_to_json
from ecoshare.codec.framed import FramedDecoder, MessageDecodeError

Delivered = tuple[int, int, dict[str, Any]]
"""(partition, offset, delivery as JSON-ready dict)."""


class DeliveryReader:
    """Reads and decodes one delivery topic; call from one thread at a time.

    A lock keeps :meth:`close` from running while a read is still in progress (as when
    an SSE client goes away mid-read and the stream closes the reader from elsewhere).
    """

    def __init__(self, bootstrap_servers: str, decoder: FramedDecoder, topic: str) -> None:
        self.topic = topic
        self._decoder = decoder
        self._lock = threading.Lock()
        self._closed = False
        self._consumer = Consumer(
            reader_config(
                bootstrap_servers,
                "delivery-reader",
                read_committed=True,
                fetch_wait_max_ms=200,
                overrides={"enable.partition.eof": False},
            )
        )

    def assign(self, positions: dict[int, int], start: int) -> bool:
        """Read every partition from ``positions`` (next offset), others from ``start``.

        False while the topic does not exist.
        """
        with self._lock:
            if self._closed:
                return False
            metadata = self._consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                return False
            self._consumer.assign(
                [
                    TopicPartition(self.topic, partition, positions.get(partition, start))
                    for partition in sorted(metadata.partitions)
                ]
            )
            return True

    def read(self, limit: int, timeout_seconds: float = 0.5) -> list[Delivered]:
        """Up to ``limit`` deliveries; an undecodable one carries an ``error`` instead."""
        with self._lock:
            if self._closed:
                return []
            found: list[Delivered] = []
            for message in self._consumer.consume(num_messages=limit, timeout=timeout_seconds):
                if message.error() is not None:
                    continue
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                try:
                    payload = delivery_to_json(
                        topic=self.topic,
                        partition=partition,
                        offset=offset,
                        headers=header_map(message.headers()),
                        record=self._decoder.decode(message.value()),
                    )
                except MessageDecodeError as exc:
                    payload = {
                        "delivery_id": f"{self.topic}:{partition}:{offset}",
                        "error": str(exc),
                    }
                found.append((partition, offset, payload))
            return found

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(KafkaException, RuntimeError):
                self._consumer.close()
