"""Reading partitions to their true end, and message headers, the same way everywhere.

"The end" is the fetch response's high watermark (partition EOF), which is exact on
every broker we run on; ListOffsets is not on the embedded broker after multi-record
batches. Readers use ``assign()``: they join no group, disturb none and commit nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition


def header_map(headers: Any) -> dict[str, bytes]:
    """Kafka message headers (a list of pairs, or a mapping) as a dict of bytes."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or ())
    found: dict[str, bytes] = {}
    for name, value in pairs:
        if value is None:
            continue
        found[str(name)] = value.encode() if isinstance(value, str) else bytes(value)
    return found


def read_to_end(
    bootstrap_servers: str,
    assignments: Iterable[tuple[str, int, int]],
    *,
    timeout_seconds: float = 30.0,
    ends: dict[tuple[str, int], int] | None = None,
) -> Iterator[Message]:
    """Every message of each (topic, partition) from ``offset`` to the partition's end.

    ``offset`` may be OFFSET_BEGINNING. Partitions of topics that do not exist are
    skipped. Messages that arrive after their partition's end was reached are not
    yielded, so the result is the partition as of that moment; ``ends``, when given,
    receives each partition's end offset. Raises TimeoutError when a partition is not
    read to its end in time, and RuntimeError for a consumer error.
    """
    wanted = [TopicPartition(topic, partition, offset) for topic, partition, offset in assignments]
    if not wanted:
        return
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"ecoshare-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            # The end is then the last stable offset: aborted batches are skipped.
            "isolation.level": "read_committed",
            "log_level": 3,
        }
    )
    try:
        existing = consumer.list_topics(timeout=timeout_seconds).topics
        wanted = [
            tp
            for tp in wanted
            if tp.topic in existing and tp.partition in existing[tp.topic].partitions
        ]
        if not wanted:
            return
        consumer.assign(wanted)
        pending = {(tp.topic, tp.partition) for tp in wanted}
        deadline = time.monotonic() + timeout_seconds
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {sorted(pending)} to the end")
            for message in consumer.consume(1000, 0.2):
                position = (message.topic() or "", message.partition() or 0)
                error = message.error()
                if error is not None:
                    if error.code() in (
                        KafkaError._PARTITION_EOF,
                        KafkaError.UNKNOWN_TOPIC_OR_PART,
                    ):
                        if position in pending and ends is not None:
                            ends[position] = message.offset() or 0
                        pending.discard(position)
                        continue
                    raise RuntimeError(f"reading {position[0]}[{position[1]}]: {error}")
                if position in pending:
                    yield message
    finally:
        consumer.close()
