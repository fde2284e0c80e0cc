"""The progress log's records and the arithmetic of a takeover (pure: no I/O, no clock).

The embedded broker has no transactions, so outputs and offsets cannot commit
atomically. Instead every ingress partition ``p`` writes its outputs (deliveries,
audit blocks, quarantine) to partition ``p`` of each output topic, and after each
batch is acknowledged it appends a *checkpoint* to partition ``p`` of the progress
topic: the next ingress offset, the end offset of every output partition it has
written, and the event ids of the batch. A worker taking over ``p`` rebuilds the
duplicate-id window from the progress log, then reads each output partition from its
checkpointed end to the true end: whatever it finds there was written after the last
checkpoint by a worker that died, and is not written again. On Apache Kafka the same
records are written inside each batch's transaction.

So that a takeover reads a bounded amount, every few batches the checkpoint is a
*snapshot* instead: the same position plus the whole duplicate window, in chunks.
Keys are chosen for a compacted topic (``cleanup.policy=compact``):

- ``<topic>:<p>/c/<seq mod ring>``: a checkpoint; a snapshot is written at least every
  ``ring`` checkpoints, so compaction never removes one written after the latest
  complete snapshot;
- ``<topic>:<p>/s/<bank>/<chunk>``: a snapshot chunk; snapshots alternate between two
  banks, so the chunks of the latest complete snapshot survive while the next one is
  being written (a worker killed mid-snapshot leaves the previous one whole);
- ``<topic>:<p>``: a checkpoint of the format before snapshots (read, never written).

A reader needs only the records from the latest complete snapshot on, so it reads the
progress partition backwards from its end (:func:`fold_progress` says when it has
read enough): bounded on Kafka, where compaction also bounds the topic, and on the
embedded broker, which does not compact.
"""

from __future__ import annotations

import binascii
import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

EVENT_ID_HEADER = "ecoshare-event-id"
SOURCE_HEADER = "ecoshare-source"  # "<ingress topic>:<partition>"
SOURCE_OFFSETS_HEADER = "ecoshare-source-offsets"  # comma-separated ingress offsets

Source = tuple[str, int]  # (ingress topic, partition)
IdRun = tuple[int, tuple[str, ...]]  # (acknowledged at, ms; event ids)


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


def source_key(ingress_topic: str, partition: int) -> bytes:
    """The key prefix of one ingress partition's records (and the old checkpoint key)."""
    return f"{ingress_topic}:{partition}".encode()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """State of one ingress partition after an acknowledged batch.

    ``seq`` numbers the partition's progress records across owners (-1: a record of
    the format before snapshots).
    """

    next_offset: int
    outputs: dict[str, int]
    event_ids: tuple[str, ...] = ()
    at_ms: int = 0
    seq: int = -1

    def key(self, source: Source, ring: int) -> bytes:
        return source_key(*source) + f"/c/{self.seq % ring}".encode()

    def encode(self) -> bytes:
        return json.dumps(
            {
                "seq": self.seq,
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
            seq=int(body.get("seq", -1)),
        )


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """One chunk of a snapshot: the position after a batch and part of the window."""

    seq: int
    bank: int
    chunk: int
    chunks: int
    next_offset: int
    outputs: dict[str, int]
    runs: tuple[IdRun, ...]
    at_ms: int

    def key(self, source: Source) -> bytes:
        return source_key(*source) + f"/s/{self.bank}/{self.chunk}".encode()

    def encode(self) -> bytes:
        return json.dumps(
            {
                "seq": self.seq,
                "bank": self.bank,
                "chunk": self.chunk,
                "chunks": self.chunks,
                "next_offset": self.next_offset,
                "outputs": self.outputs,
                "runs": [[at_ms, list(ids)] for at_ms, ids in self.runs],
                "at_ms": self.at_ms,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> SnapshotChunk:
        body = json.loads(raw)
        return cls(
            seq=int(body["seq"]),
            bank=int(body["bank"]),
            chunk=int(body["chunk"]),
            chunks=int(body["chunks"]),
            next_offset=int(body["next_offset"]),
            outputs={str(k): int(v) for k, v in body["outputs"].items()},
            runs=tuple((int(at_ms), tuple(ids)) for at_ms, ids in body["runs"]),
            at_ms=int(body["at_ms"]),
        )

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.next_offset, dict(self.outputs), (), self.at_ms, self.seq)


def snapshot_chunks(
    checkpoint: Checkpoint, runs: Iterable[IdRun], bank: int, ids_per_chunk: int
) -> Iterator[SnapshotChunk]:
    """``checkpoint``'s position and the window ``runs`` as chunks of at most
    ``ids_per_chunk`` ids (at least one chunk, so an empty window is a snapshot too).

    Chunks are made one at a time as they are taken: a window keeps its UUIDs packed, so
    only the ids of the chunk being written exist as strings, not the whole window's.
    """
    if isinstance(runs, AcknowledgedIds):
        total = len(runs)
    else:
        runs = list(runs)
        total = sum(len(ids) for _, ids in runs)
    chunks = max(1, -(-total // ids_per_chunk))

    def chunk(index: int, piece: list[IdRun]) -> SnapshotChunk:
        return SnapshotChunk(
            checkpoint.seq,
            bank,
            index,
            chunks,
            checkpoint.next_offset,
            dict(checkpoint.outputs),
            tuple(piece),
            checkpoint.at_ms,
        )

    piece: list[IdRun] = []
    index, room = 0, ids_per_chunk
    for at_ms, ids in runs:
        start = 0
        while start < len(ids):
            if room == 0:
                yield chunk(index, piece)
                index, piece, room = index + 1, [], ids_per_chunk
            taken = ids[start : start + room]
            piece.append((at_ms, taken))
            room -= len(taken)
            start += len(taken)
    yield chunk(index, piece)


@dataclass
class PartitionProgress:
    """What the progress log says about one ingress partition, from its records read
    so far (newest last), once :attr:`complete`."""

    last: Checkpoint | None = None
    runs: list[IdRun] = field(default_factory=list)
    snapshot_seq: int = -1  # seq of the latest complete snapshot (-1: none)
    snapshot_bank: int = -1
    max_seq: int = -1  # highest seq seen, complete snapshot or not
    complete: bool = False  # a complete snapshot was found: older records do not matter

    @property
    def next_seq(self) -> int:
        return self.max_seq + 1

    @property
    def next_bank(self) -> int:
        """The bank the next snapshot writes: never the latest complete one's."""
        return 1 - self.snapshot_bank if self.snapshot_bank >= 0 else 0


def parse_progress_key(key: bytes) -> tuple[Source, str] | None:
    """(ingress partition, kind) of a progress record key; kind is "c", "s" or "legacy"."""
    text = key.decode(errors="replace")
    head, _, rest = text.partition("/")
    topic, colon, partition = head.rpartition(":")
    if not colon or not partition.isdigit():
        return None
    if not rest:
        return (topic, int(partition)), "legacy"
    kind = rest.split("/", 1)[0]
    return ((topic, int(partition)), kind) if kind in ("c", "s") else None


def fold_progress(
    records: Iterable[tuple[int, bytes, bytes]], wanted: Iterable[Source]
) -> dict[Source, PartitionProgress]:
    """The progress of each ``wanted`` ingress partition from progress records
    (offset, key, value) of one progress partition, in any order.

    A partition's progress is :attr:`~PartitionProgress.complete` once its latest
    complete snapshot is among the records; then only that snapshot and the checkpoints
    after it count. When no snapshot is complete, every checkpoint read counts (a
    reader that reached offset 0 then has the whole history).
    """
    by_source: dict[Source, list[tuple[int, str, bytes]]] = {source: [] for source in wanted}
    for offset, key, value in records:
        parsed = parse_progress_key(key)
        if parsed is None or not value or parsed[0] not in by_source:
            continue
        source, kind = parsed
        by_source[source].append((offset, kind, value))
    return {source: _fold_one(sorted(found)) for source, found in by_source.items()}


def _fold_one(records: list[tuple[int, str, bytes]]) -> PartitionProgress:
    progress = PartitionProgress()
    checkpoints: list[tuple[int, Checkpoint]] = []
    snapshots: dict[tuple[int, int], dict[int, tuple[int, SnapshotChunk]]] = {}
    for offset, kind, value in records:
        if kind == "s":
            chunk = SnapshotChunk.decode(value)
            snapshots.setdefault((chunk.seq, chunk.bank), {})[chunk.chunk] = (offset, chunk)
            progress.max_seq = max(progress.max_seq, chunk.seq)
        else:
            checkpoint = Checkpoint.decode(value)
            checkpoints.append((offset, checkpoint))
            progress.max_seq = max(progress.max_seq, checkpoint.seq)
    newest: tuple[int, SnapshotChunk, list[SnapshotChunk]] | None = None
    for parts in snapshots.values():
        first = next(iter(parts.values()))[1]
        if len(parts) != first.chunks or not all(i in parts for i in range(first.chunks)):
            continue  # a worker died while writing it (or an older bank's leftovers)
        ends_at = max(offset for offset, _ in parts.values())
        if newest is None or ends_at > newest[0]:
            newest = (ends_at, first, [parts[i][1] for i in range(first.chunks)])
    after = -1
    if newest is not None:
        after, first, chunks = newest
        progress.complete = True
        progress.snapshot_seq, progress.snapshot_bank = first.seq, first.bank
        progress.last = first.checkpoint
        for chunk in chunks:
            progress.runs.extend(chunk.runs)
    for offset, checkpoint in checkpoints:
        if offset > after:
            progress.last = checkpoint
            if checkpoint.event_ids:
                progress.runs.append((checkpoint.at_ms, checkpoint.event_ids))
    return progress


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """When a checkpoint is written as a snapshot.

    At most ``every_batches`` checkpoints follow a snapshot (this bounds what a
    takeover reads, in records, and is the ring of checkpoint keys), and a snapshot is
    due sooner once the ids checkpointed since the last one outnumber the window it
    would carry (so rewriting the window costs at most about one more write per id).
    """

    every_batches: int = 200
    ids_per_chunk: int = 5000

    def due(self, batches_since: int, ids_since: int, window_ids: int) -> bool:
        return batches_since >= self.every_batches - 1 or ids_since >= max(
            window_ids, self.ids_per_chunk
        )


# A run of SDK ids (canonical lowercase hyphenated UUIDs) is kept as their 16-byte
# values: a day's window of ids costs 16 bytes each instead of a string object and a
# tuple slot (about 90 bytes). Only the exact canonical form is packed, so unpacking
# gives back the same strings; a run with any other id stays a tuple. Both ways work on
# the whole run with C-level string and slice operations (tens of ns an id).
_UUID_LENGTH = 36
_HYPHENS = (8, 13, 18, 23)
_HEX_DIGITS = b"0123456789abcdef"
# (position in the canonical text, position in the 32 hex digits) of every digit
_DIGIT_PLACES = tuple(
    (text, text - sum(1 for hyphen in _HYPHENS if hyphen < text))
    for text in range(_UUID_LENGTH)
    if text not in _HYPHENS
)


def _packed(ids: tuple[str, ...]) -> tuple[str, ...] | bytes:
    count = len(ids)
    joined = "".join(ids)
    if len(joined) != _UUID_LENGTH * count or set(map(len, ids)) != {_UUID_LENGTH}:
        return ids
    hyphens = "-" * count
    if any(joined[at::_UUID_LENGTH] != hyphens for at in _HYPHENS):
        return ids
    digits = joined.replace("-", "")
    if len(digits) != 32 * count or not digits.isascii():
        return ids
    encoded = digits.encode("ascii")
    if encoded.translate(None, _HEX_DIGITS):  # anything but lowercase hex digits
        return ids
    return binascii.unhexlify(encoded)


def _unpacked(ids: tuple[str, ...] | bytes) -> tuple[str, ...]:
    if not isinstance(ids, bytes):
        return ids
    count = len(ids) // 16
    digits = ids.hex().encode("ascii")
    text = bytearray(b"-" * (_UUID_LENGTH * count))
    for at, digit in _DIGIT_PLACES:
        text[at::_UUID_LENGTH] = digits[digit::32]
    joined = text.decode("ascii")
    return tuple(joined[at : at + _UUID_LENGTH] for at in range(0, len(joined), _UUID_LENGTH))


def _run_length(ids: tuple[str, ...] | bytes) -> int:
    return len(ids) // 16 if isinstance(ids, bytes) else len(ids)


class AcknowledgedIds:
    """The event ids of one ingress partition's acknowledged batches within the window
    (what a snapshot carries): the engine's own window may already hold the ids of a
    batch still in flight, which a snapshot must not promise. Runs of canonical UUIDs
    are kept packed (16 bytes an id) and unpacked one run at a time when iterated."""

    __slots__ = ("_count", "_runs", "capacity", "window_ms")

    def __init__(self, window_ms: int, capacity: int, runs: Iterable[IdRun] = ()) -> None:
        self.window_ms = window_ms
        self.capacity = capacity
        self._runs: deque[tuple[int, tuple[str, ...] | bytes]] = deque()
        self._count = 0
        for at_ms, ids in runs:
            self.add(at_ms, ids)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[IdRun]:
        return ((at_ms, _unpacked(ids)) for at_ms, ids in self._runs)

    def add(self, at_ms: int, ids: tuple[str, ...]) -> None:
        if ids:
            self._runs.append((at_ms, _packed(ids)))
            self._count += len(ids)
        self.expire(at_ms)

    def expire(self, now_ms: int) -> None:
        """Drop runs older than the window, and the oldest ids beyond the capacity."""
        runs = self._runs
        horizon = now_ms - self.window_ms
        while runs and (
            runs[0][0] < horizon or self._count - _run_length(runs[0][1]) >= self.capacity
        ):
            self._count -= _run_length(runs.popleft()[1])
        if runs and self._count > self.capacity:
            at_ms, ids = runs[0]
            excess = self._count - self.capacity
            runs[0] = (at_ms, ids[excess * 16 :] if isinstance(ids, bytes) else ids[excess:])
            self._count -= excess
