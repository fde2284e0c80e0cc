"""Checkpoints that let a restarted worker deliver every event exactly once.

The embedded broker has no transactions, so outputs and offsets cannot commit
atomically. Instead every ingress partition ``p`` writes its outputs (deliveries,
audit blocks, quarantine) to partition ``p`` of each output topic, and after each
batch is acknowledged it appends a checkpoint to partition ``p`` of the progress
topic: the next ingress offset, the end offset of every output partition it has
written, and the event ids of the batch (the duplicate-id window is rebuilt from
them). A worker taking over ``p`` reads the progress log, then reads each output
partition from its checkpointed end to the true end: whatever it finds there was
written after the last checkpoint by a worker that died, and is not written again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from ecoshare.adapters.kafka.reading import header_map, read_to_end

EVENT_ID_HEADER = "ecoshare-event-id"
SOURCE_HEADER = "ecoshare-source"  # "<ingress topic>:<partition>"
SOURCE_OFFSETS_HEADER = "ecoshare-source-offsets"  # comma-separated ingress offsets


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """State of one ingress partition after an acknowledged batch."""

    next_offset: int
    outputs: dict[str, int]
    event_ids: tuple[str, ...] = ()
    at_ms: int = 0

    def encode(self) -> bytes:
        return json.dumps(
            {
                "next_offset": self.next_offset,
                "outputs": self.outputs,
                "event_ids": list(self.event_ids),
                "at_ms": self.at_ms,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint:
        body = json.loads(raw)
        return cls(
            next_offset=int(body["next_offset"]),
            outputs={str(k): int(v) for k, v in body["outputs"].items()},
            event_ids=tuple(body.get("event_ids", ())),
            at_ms=int(body.get("at_ms", 0)),
        )


def parse_offsets(text: str) -> set[int]:
    """Offsets from a header: comma-separated numbers or inclusive ``first-last`` ranges."""
    offsets: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            offsets.update(range(int(first), int(last) + 1))
        elif part:
            offsets.add(int(part))
    return offsets


def progress_key(ingress_topic: str, partition: int) -> bytes:
    return f"{ingress_topic}:{partition}".encode()


@dataclass
class PartitionHistory:
    """What the progress log and the output tails say about one ingress partition."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    # output topic -> ingress offsets whose output was written after the last checkpoint
    written_after_checkpoint: dict[str, set[int]] = field(default_factory=dict)

    @property
    def last(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None


def load_partition_histories(
    bootstrap_servers: str,
    progress_topic: str,
    partitions: Iterable[tuple[str, int, Iterable[str]]],
) -> dict[tuple[str, int], PartitionHistory]:
    """Read the progress log and output tails of several ingress partitions at once.

    ``partitions`` holds (ingress topic, partition, outputs that may hold writes of this
    partition but appear in no checkpoint yet, e.g. a new subscriber's topic; these are
    read from 0).
    """
    wanted = [(topic, partition, tuple(outputs)) for topic, partition, outputs in partitions]
    histories = {(topic, partition): PartitionHistory() for topic, partition, _ in wanted}
    keys = {progress_key(topic, partition): (topic, partition) for topic, partition, _ in wanted}
    progress_partitions = sorted({partition for _, partition, _ in wanted})
    for message in read_to_end(
        bootstrap_servers, [(progress_topic, partition, 0) for partition in progress_partitions]
    ):
        source = keys.get(message.key() or b"")
        if source is not None and message.value():
            histories[source].checkpoints.append(Checkpoint.decode(message.value() or b"{}"))
    starts: dict[tuple[str, int], int] = {}
    for topic, partition, outputs in wanted:
        last = histories[(topic, partition)].last
        for output in outputs:
            starts.setdefault((output, partition), 0)
        if last is not None:
            for output, offset in last.outputs.items():
                # Several ingress topics may share an output partition (audit): read it
                # from the earliest of their checkpoints.
                key = (output, partition)
                starts[key] = min(starts.get(key, offset), offset)
    sources = {
        f"{topic}:{partition}".encode(): (topic, partition) for topic, partition, _ in wanted
    }
    tails = read_to_end(
        bootstrap_servers,
        [(output, partition, offset) for (output, partition), offset in starts.items()],
    )
    for message in tails:
        headers = header_map(message.headers())
        source = sources.get(headers.get(SOURCE_HEADER, b""))
        if source is None:
            continue
        history = histories[source]
        last = history.last
        output = message.topic() or ""
        if last is not None and (message.offset() or 0) < last.outputs.get(output, 0):
            continue
        offsets = headers.get(SOURCE_OFFSETS_HEADER)
        if offsets:
            written = history.written_after_checkpoint.setdefault(output, set())
            written.update(parse_offsets(offsets.decode()))
    return histories
