"""What a worker taking over ingress partitions reads: the progress log, backwards
from its end to the latest snapshot, and the output tails after the last checkpoint."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Protocol

from confluent_kafka import Message

from ecoshare.adapters.kafka.reading import header_map, partition_end, read_to_end
from ecoshare.governance.progress import (
    SOURCE_HEADER,
    SOURCE_OFFSETS_HEADER,
    PartitionProgress,
    SnapshotPolicy,
    Source,
    fold_progress,
    parse_offsets,
)


class LogReader(Protocol):
    """One-shot reads of partitions (progress log, output tails)."""

    def read(self, assignments: list[tuple[str, int, int]]) -> Generator[Message]:
        """Every message from each (topic, partition, offset) to the partition's end
        (a generator: closing it stops the read)."""
        ...

    def end_estimate(self, topic: str, partition: int) -> int:
        """Near the partition's end, never past it (the embedded broker under-reports)."""
        ...


class KafkaLogReader:
    """:class:`LogReader` on a cluster."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers

    def read(self, assignments: list[tuple[str, int, int]]) -> Generator[Message]:
        yield from read_to_end(self._bootstrap, assignments)

    def end_estimate(self, topic: str, partition: int) -> int:
        """The partition's end from a fetch answer's high watermark: exact on every
        broker (see :func:`~ecoshare.adapters.kafka.reading.partition_end`)."""
        return partition_end(self._bootstrap, topic, partition)


def read_progress(
    reader: LogReader, topic: str, sources: list[Source], policy: SnapshotPolicy
) -> tuple[dict[Source, PartitionProgress], int]:
    """Each source's progress and the number of progress records read.

    Each progress partition is read backwards from its end in spans that double, until
    the latest complete snapshot of every source sharing it is among the records read
    (or the partition's start is reached: a log written before snapshots). The first
    span holds what ``policy`` lets follow a snapshot, for each ingress partition
    sharing the progress partition, so one span is usually enough.
    """
    by_partition: dict[int, list[Source]] = {}
    for source in sources:
        by_partition.setdefault(source[1], []).append(source)
    found: dict[Source, PartitionProgress] = {}
    read = 0
    for partition, shared in sorted(by_partition.items()):
        records: list[tuple[int, bytes, bytes]] = []
        stop: int | None = None
        span = len(shared) * (policy.every_batches + 2)
        start = max(0, reader.end_estimate(topic, partition) - span)
        while True:
            with contextlib.closing(reader.read([(topic, partition, start)])) as messages:
                for message in messages:
                    offset = message.offset() or 0
                    if stop is not None and offset >= stop:
                        break
                    read += 1
                    records.append((offset, message.key() or b"", message.value() or b""))
            folded = fold_progress(records, shared)
            if start == 0 or all(progress.complete for progress in folded.values()):
                break
            stop, span = start, span * 2
            start = max(0, start - span)
        found.update(folded)
    return found, read


def read_output_tails(
    reader: LogReader,
    wanted: list[tuple[str, int, tuple[str, ...]]],
    progress: dict[Source, PartitionProgress],
) -> dict[Source, dict[str, set[int]]]:
    """Per source, the ingress offsets whose outputs were written after its last
    checkpoint, by output topic. ``wanted`` holds (topic, partition, outputs that may
    hold its writes but appear in no checkpoint yet, read from 0)."""
    starts: dict[tuple[str, int], int] = {}
    for topic, partition, outputs in wanted:
        last = progress[(topic, partition)].last
        for output in outputs:
            starts.setdefault((output, partition), 0)
        if last is not None and outputs:
            for output, offset in last.outputs.items():
                # Several ingress topics share an output partition (audit): read it
                # from the earliest of their checkpoints.
                key = (output, partition)
                starts[key] = min(starts.get(key, offset), offset)
    by_header = {f"{t}:{p}".encode(): (t, p) for t, p, _ in wanted}
    written: dict[Source, dict[str, set[int]]] = {}
    if not starts:
        return written
    for message in reader.read([(o, p, offset) for (o, p), offset in starts.items()]):
        headers = header_map(message.headers())
        source = by_header.get(headers.get(SOURCE_HEADER, b""))
        if source is None:
            continue
        last = progress[source].last
        output = message.topic() or ""
        if last is not None and (message.offset() or 0) < last.outputs.get(output, 0):
            continue
        offsets = headers.get(SOURCE_OFFSETS_HEADER)
        if offsets:
            found = written.setdefault(source, {}).setdefault(output, set())
            found.update(parse_offsets(offsets.decode()))
    return written
