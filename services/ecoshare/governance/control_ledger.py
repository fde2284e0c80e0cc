"""What a worker's control app has applied: records, change stamps, positions, snapshots.

The Faust tables (:mod:`ecoshare.governance.control_app`) hand every changelog record to
:meth:`ControlLedger.apply_events`; the ledger skips anything at or below the offset it
has applied (Faust re-reads partitions from their start on some paths, so a key can
never turn back to an older value), keeps the bookkeeping the hot path needs and
publishes a new immutable :class:`~ecoshare.governance.control_plane.ControlSnapshot`
after each run of changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from types import MappingProxyType
from typing import Any

from faust.types import EventT

from ecoshare.adapters.kafka.control_records import (
    ControlRecordError,
    JsonObject,
    decode_key,
    decode_value,
)
from ecoshare.governance.control_plane import (
    ChangeStamp,
    ControlChange,
    ControlKind,
    ControlSnapshot,
    ControlTopicsContents,
)

logger = logging.getLogger(__name__)

ChangeCallback = Callable[[ControlSnapshot, Sequence[ControlChange]], None]


class ControlLedger:
    """What has been applied: records (in the tables' stores), stamps and positions.

    Mutated only on the event-loop thread that runs the Faust app; other threads read
    the published snapshot, an immutable object swapped in by a single assignment.
    """

    def __init__(self) -> None:
        self.stores: dict[ControlKind, MutableMapping[str, Any]] = {}
        self.stamps: dict[ControlKind, dict[str, ChangeStamp]] = {k: {} for k in ControlKind}
        self.positions: dict[tuple[str, int], int] = {}
        self.undecodable = 0
        self.gap_fills = 0
        self._snapshot = ControlSnapshot()
        self._pending: list[ControlChange] = []
        self._dirty: set[ControlKind] = set()
        self._publish_scheduled = False
        self._subscribers: list[ChangeCallback] = []
        self._subscribers_lock = threading.Lock()

    @property
    def snapshot(self) -> ControlSnapshot:
        return self._snapshot

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        with self._subscribers_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._subscribers_lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def apply_events(self, kind: ControlKind, events: Iterable[EventT[Any]]) -> None:
        """Apply changelog records in offset order; skip those already applied."""
        for event in events:
            message = event.message
            tp = (str(message.topic), int(message.partition))
            offset = int(message.offset)
            if offset < self.positions.get(tp, 0):
                continue  # already applied: Faust re-read the partition from its start
            self.positions[tp] = offset + 1
            try:
                key = decode_key(message.key)
                value = decode_value(message.value)
            except ControlRecordError as exc:
                self.undecodable += 1
                logger.warning("skipping control record %s@%d: %s", tp, offset, exc)
                continue
            self.apply_record(kind, key, value, tp, offset)

    def apply_record(
        self,
        kind: ControlKind,
        key: str,
        value: JsonObject | None,
        tp: tuple[str, int],
        offset: int,
    ) -> None:
        store = self.stores[kind]
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
        stamp = ChangeStamp(
            topic=tp[0],
            partition=tp[1],
            offset=offset,
            deleted=value is None,
            applied_monotonic=time.monotonic(),
            applied_wall=time.time(),
        )
        self.stamps[kind][key] = stamp
        self._pending.append(ControlChange(kind, key, value, stamp))
        self._dirty.add(kind)
        if not self._publish_scheduled:
            self._publish_scheduled = True
            # Coalesce: a run of records that Faust hands over back to back (a rebuild)
            # becomes one snapshot, published as soon as the loop is free again.
            asyncio.get_running_loop().call_soon(self.publish)

    def publish(self) -> None:
        self._publish_scheduled = False
        if not self._pending:
            return
        previous = self._snapshot
        records = {kind: previous.records(kind) for kind in ControlKind}
        applied_at = dict(previous.applied_at)
        for kind in self._dirty:
            records[kind] = MappingProxyType(dict(self.stores[kind].items()))
            applied_at[kind] = MappingProxyType(dict(self.stamps[kind]))
        changes, self._pending, self._dirty = self._pending, [], set()
        snapshot = ControlSnapshot(
            version=previous.version + len(changes),
            partners=records[ControlKind.PARTNER],
            agreements=records[ControlKind.AGREEMENT],
            consents=records[ControlKind.CONSENT],
            applied_at=MappingProxyType(applied_at),
            positions=MappingProxyType(dict(self.positions)),
        )
        self._snapshot = snapshot
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(snapshot, changes)
            except Exception:
                logger.exception("control-plane subscriber %r failed", callback)

    def fill_gaps(self, contents: ControlTopicsContents) -> int:
        """Apply every record of ``contents`` that the tables lack; return how many.

        A key lacks its record when its last applied change is older than the last
        record of the key found in the topic. Runs on the loop thread, so it cannot
        interleave with records Faust applies.
        """
        filled = 0
        for kind, latest in contents.latest.items():
            for key, record in latest.items():
                if record.newer_than(self.stamps[kind].get(key)):
                    tp = (record.topic, record.partition)
                    self.apply_record(kind, key, record.value, tp, record.offset)
                    filled += 1
        for tp, last_offset in contents.last_offsets.items():
            self.positions[tp] = max(self.positions.get(tp, 0), last_offset + 1)
        self.gap_fills += filled
        self.publish()
        return filled
