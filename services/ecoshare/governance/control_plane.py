"""Control-plane records on compacted topics: kinds, writer, snapshots, reference reader.

Partners, data-sharing agreements and consent records each live in one compacted
control topic (see :class:`ecoshare.config.topics.TopicNames`). A record is

- key: the record's id (``partner_id`` / ``agreement_id`` / ``consent_id``) as UTF-8;
- value: a JSON object as UTF-8. Deletion is the JSON value ``{"deleted": true}``,
  not a null tombstone: the embedded broker does not reliably deliver null values,
  and a marker value keeps every change an ordinary, ordered record.

The record format, the rule for invalid records and the one writer
(:class:`~ecoshare.adapters.kafka.control_records.ControlRecordWriter`) are in
:mod:`ecoshare.adapters.kafka.control_records`. This module holds what does not depend
on Faust: the control kinds and their topics, the writer addressed by them, the
immutable :class:`ControlSnapshot` the hot path reads, and an independent confluent-kafka
reader that reads every control partition to its true end (the fetch response's high
watermark, which the embedded broker reports right even where its ListOffsets answer is
short). :mod:`ecoshare.governance.control_app` holds the Faust worker app that keeps the
state live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.adapters.kafka.control_records import (
    ControlRecordError,
    ControlRecordWriter,
    JsonObject,
    decode_key,
    decode_value,
)
from ecoshare.adapters.kafka.errors import KafkaIoError
from ecoshare.adapters.kafka.reading import read_to_end, topic_partitions
from ecoshare.config.topics import TopicNames, TopicPolicy
from ecoshare.errors import EcoshareError


class ControlPlaneError(EcoshareError):
    """Base of the control plane's errors."""


class ControlPlaneNotRebuiltError(ControlPlaneError):
    """The control-plane state did not catch up with its topics in time."""


class ControlKind(StrEnum):
    """The three kinds of control-plane records, each with its own topic."""

    PARTNER = "partner"
    AGREEMENT = "agreement"
    CONSENT = "consent"

    def topic(self, names: TopicNames) -> str:
        return {
            ControlKind.PARTNER: names.partners,
            ControlKind.AGREEMENT: names.agreements,
            ControlKind.CONSENT: names.consents,
        }[self]


def control_topic_kinds(names: TopicNames) -> dict[str, ControlKind]:
    """Map each control topic name to its kind."""
    return {kind.topic(names): kind for kind in ControlKind}


def ensure_control_topics(
    bootstrap_servers: str,
    names: TopicNames,
    *,
    partitions: int = 1,
    policy: TopicPolicy | None = None,
) -> list[str]:
    """Create the compacted control topics that do not exist yet; return those created."""
    return ensure_topics(
        bootstrap_servers,
        [TopicSpec.compacted(kind.topic(names), partitions) for kind in ControlKind],
        policy=policy,
    )


# -- writer ------------------------------------------------------------------------------


def control_writer(
    bootstrap_servers: str, names: TopicNames, *, timeout_seconds: float = 10.0
) -> ControlRecordWriter:
    """The platform's control-record writer, addressed by :class:`ControlKind`."""
    return ControlRecordWriter(
        bootstrap_servers,
        {kind.value: kind.topic(names) for kind in ControlKind},
        timeout_seconds=timeout_seconds,
    )


# -- snapshots ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeStamp:
    """Where a key's last change came from, and when this process applied it.

    ``applied_monotonic`` is ``time.monotonic()`` and ``applied_wall`` is ``time.time()``
    (seconds), both taken in this process when the change entered the state; subtract
    the writer's clock reading to measure change-to-enforcement delay.
    """

    topic: str
    partition: int
    offset: int
    deleted: bool
    applied_monotonic: float
    applied_wall: float


@dataclass(frozen=True, slots=True)
class ControlChange:
    """One applied change, as passed to subscribers."""

    kind: ControlKind
    key: str
    value: JsonObject | None
    stamp: ChangeStamp


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ControlSnapshot:
    """An immutable view of the whole control plane at one point.

    A new snapshot replaces the previous one after every applied change (changes that
    arrive back to back, as in a rebuild, are published together), so a reader holding
    one sees a consistent state however long it keeps it. ``version`` counts the changes
    applied since this process started (a snapshot covering several changes advances it
    by their number), so a higher version is always a later state.
    Deleted keys are absent from the record mappings but keep a stamp in
    ``applied_at``. Values are shared with the next snapshots: treat them as read-only.
    """

    version: int = 0
    partners: Mapping[str, JsonObject] = field(default_factory=lambda: _EMPTY)
    agreements: Mapping[str, JsonObject] = field(default_factory=lambda: _EMPTY)
    consents: Mapping[str, JsonObject] = field(default_factory=lambda: _EMPTY)
    applied_at: Mapping[ControlKind, Mapping[str, ChangeStamp]] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(ControlKind, _EMPTY))
    )
    positions: Mapping[tuple[str, int], int] = field(default_factory=lambda: MappingProxyType({}))
    """Next offset to apply, per (topic, partition): everything before it is reflected."""

    def records(self, kind: ControlKind) -> Mapping[str, JsonObject]:
        return {
            ControlKind.PARTNER: self.partners,
            ControlKind.AGREEMENT: self.agreements,
            ControlKind.CONSENT: self.consents,
        }[ControlKind(kind)]

    def stamp(self, kind: ControlKind, key: str) -> ChangeStamp | None:
        return self.applied_at[ControlKind(kind)].get(key)


# -- independent reader ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    """The last record of a key as found by reading its partition from the start."""

    kind: ControlKind
    key: str
    topic: str
    partition: int
    offset: int
    value: JsonObject | None

    def newer_than(self, stamp: ChangeStamp | None) -> bool:
        """Whether a state whose last change of this key is ``stamp`` lacks this record.

        Offsets order records within one partition only; a key found on two partitions
        (written with different partitioners) is not compared across them.
        """
        if stamp is None:
            return self.value is not None
        if (stamp.topic, stamp.partition) != (self.topic, self.partition):
            return False
        return stamp.offset < self.offset


@dataclass(frozen=True, slots=True)
class ControlTopicsContents:
    """Everything the control topics held when each partition was read to its end."""

    last_offsets: Mapping[tuple[str, int], int]
    """Offset of the last record per (topic, partition); absent for an empty partition."""
    ends: Mapping[tuple[str, int], int]
    """High watermark per (topic, partition) at the moment its end was reached."""
    latest: Mapping[ControlKind, Mapping[str, ReferenceRecord]]
    undecodable: int = 0


def read_control_topics(
    bootstrap_servers: str,
    names: TopicNames,
    *,
    timeout_seconds: float = 30.0,
) -> ControlTopicsContents:
    """Read every control-topic partition from its start to its end, with confluent-kafka.

    The end of a partition is where the fetch response says it is (partition EOF), not
    what ListOffsets says, so the result is complete on brokers whose ListOffsets
    under-reports. Uses ``assign()``, so it neither joins nor disturbs any group, and
    commits nothing. Raises :class:`ControlPlaneNotRebuiltError` on timeout.
    """
    kinds = control_topic_kinds(names)
    try:
        partitions = topic_partitions(bootstrap_servers, kinds, timeout_seconds=timeout_seconds)
    except KafkaIoError as exc:
        raise ControlPlaneNotRebuiltError(
            f"could not read the control topics ({exc}); create them with ensure_control_topics"
        ) from exc
    ends: dict[tuple[str, int], int] = {}
    last_offsets: dict[tuple[str, int], int] = {}
    latest: dict[ControlKind, dict[str, ReferenceRecord]] = {kind: {} for kind in ControlKind}
    undecodable = 0
    try:
        for message in read_to_end(
            bootstrap_servers,
            [(topic, partition, OFFSET_BEGINNING) for topic, partition in partitions],
            timeout_seconds=timeout_seconds,
            ends=ends,
        ):
            tp = (str(message.topic()), _number(message.partition()))
            offset = _number(message.offset())
            last_offsets[tp] = offset
            kind = kinds[tp[0]]
            try:
                key = decode_key(message.key())
                value = decode_value(message.value())
            except ControlRecordError:
                undecodable += 1
                continue
            latest[kind][key] = ReferenceRecord(kind, key, tp[0], tp[1], offset, value)
    except (TimeoutError, RuntimeError, KafkaException) as exc:
        raise ControlPlaneNotRebuiltError(
            f"control topics were not read to their end: {exc}"
        ) from exc
    return ControlTopicsContents(last_offsets, ends, latest, undecodable)


def _number(value: int | None) -> int:
    if value is None:
        raise ControlPlaneNotRebuiltError("the consumer returned a record without a position")
    return value
