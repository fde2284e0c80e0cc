"""Reading partitions to their true end, and message headers, the same way everywhere.

"The end" is the fetch response's high watermark (partition EOF), which is exact on
every broker we run on; ListOffsets is not on the embedded broker after multi-record
batches. Readers use ``assign()``: they join no group, disturb none and commit nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from ecoshare.adapters.kafka.config import metadata_consumer_config, reader_config
from ecoshare.adapters.kafka.errors import KafkaIoError, ReadTimeoutError, TopicMissingError


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
    # read_committed: the end is then the last stable offset, aborted batches skipped.
    consumer = Consumer(
        reader_config(bootstrap_servers, "reader", read_committed=True, fetch_wait_max_ms=10)
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


def partition_end(
    bootstrap_servers: str, topic: str, partition: int, *, timeout_seconds: float = 30.0
) -> int:
    """The end offset of one partition (its last stable offset); 0 when it does not exist.

    The end is the high watermark a fetch answer carries, exact on every broker we run
    on (the embedded broker's ListOffsets answers 1 for a long partition). One small
    fetch from the start brings it: a batch when there is data, the partition's EOF
    when there is none. 0 as well when no answer came in ``timeout_seconds`` or the
    client failed, so a caller reading "from the end" reads too much, never too little.
    """
    consumer = Consumer(
        reader_config(
            bootstrap_servers,
            "partition-end",
            read_committed=True,
            fetch_wait_max_ms=10,
            # The broker still sends one whole batch; the watermark comes with it.
            overrides={"max.partition.fetch.bytes": 1024},
        )
    )
    tp = TopicPartition(topic, partition, OFFSET_BEGINNING)
    try:
        found = consumer.list_topics(topic, timeout=timeout_seconds).topics.get(topic)
        if found is None or found.error is not None or partition not in found.partitions:
            return 0
        consumer.assign([tp])
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline and not consumer.consume(1, 0.2):
            pass
        _, high = consumer.get_watermark_offsets(tp, cached=True)
    except KafkaException:
        return 0
    finally:
        with contextlib.suppress(KafkaException, RuntimeError):
            consumer.close()
    return max(0, int(high))


def topic_partitions(
    bootstrap_servers: str, topics: Iterable[str], *, timeout_seconds: float = 30.0
) -> list[tuple[str, int]]:
    """Every (topic, partition) of ``topics``; TopicMissingError if one does not exist."""
    consumer = Consumer(metadata_consumer_config(bootstrap_servers))
    try:
        found: list[tuple[str, int]] = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=timeout_seconds).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                raise TopicMissingError(f"topic {topic!r} does not exist")
            found.extend((topic, partition) for partition in sorted(metadata.partitions))
        return found
    except KafkaException as exc:
        raise KafkaIoError(f"could not list the partitions of {list(topics)}: {exc}") from exc
    finally:
        with contextlib.suppress(KafkaException, RuntimeError):
            consumer.close()


def read_topics_to_end(
    bootstrap_servers: str, topics: Iterable[str], *, timeout_seconds: float = 30.0
) -> Iterator[Message]:
    """Every message of every partition of ``topics``, from the beginning to the end.

    Raises TopicMissingError when a topic does not exist, ReadTimeoutError when it is
    not read to its end in time and KafkaIoError for any other failure.
    """
    wanted = list(topics)
    partitions = topic_partitions(bootstrap_servers, wanted, timeout_seconds=timeout_seconds)
    try:
        yield from read_to_end(
            bootstrap_servers,
            [(topic, partition, OFFSET_BEGINNING) for topic, partition in partitions],
            timeout_seconds=timeout_seconds,
        )
    except TimeoutError as exc:
        raise ReadTimeoutError(f"{', '.join(wanted)} not read to the end: {exc}") from exc
    except (RuntimeError, KafkaException) as exc:
        raise KafkaIoError(f"could not read {', '.join(wanted)}: {exc}") from exc
