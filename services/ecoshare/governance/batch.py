"""What governing one batch yields: the outputs, each ingress partition's bookkeeping
and the counts the metrics observer turns into series."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecoshare.governance.rendering import IngressPartition, Produce


@dataclass(slots=True)
class PartitionBatch:
    """Outputs and bookkeeping of one ingress partition within a batch.

    ``skip`` maps an output topic to the ingress offsets whose output there was already
    written after the last checkpoint (by a worker that died): not written again.
    """

    topic: str
    partition: int
    event_type: str
    first_offset: int
    next_offset: int
    new_event_ids: list[str] = field(default_factory=list)
    audit_events: list[list[Any]] = field(default_factory=list)
    audit_quarantined: list[list[Any]] = field(default_factory=list)
    skip: dict[str, set[int]] | None = None
    source_header: tuple[str, bytes] = ("", b"")  # the wire form of ``source``

    @property
    def source(self) -> IngressPartition:
        return (self.topic, self.partition)

    def written(self, output_topic: str, offset: int) -> bool:
        """Whether the output of ingress ``offset`` to ``output_topic`` exists already."""
        skip = self.skip
        return skip is not None and offset in skip.get(output_topic, ())


@dataclass
class BatchCounts:
    """What a batch did, for metrics: label tuples to counts.

    ``admitted`` and ``quarantined_publishers`` are keyed (publisher, event type) and
    together count every ingress message once; a quarantined message whose publisher
    was not authenticated counts under
    :data:`~ecoshare.governance.admission.UNKNOWN_PUBLISHER`.
    ``delivered_ingested_ms`` holds, per subscriber, the ingress record's broker
    timestamp of each delivered event (0 when the broker gave none).
    """

    admitted: dict[tuple[str, str], int] = field(default_factory=dict)
    delivered: dict[tuple[str, str], int] = field(default_factory=dict)
    withheld: dict[tuple[str, str, str], int] = field(default_factory=dict)
    quarantined: dict[tuple[str, str], int] = field(default_factory=dict)
    quarantined_publishers: dict[tuple[str, str], int] = field(default_factory=dict)
    subscriber_received: dict[tuple[str, str], int] = field(default_factory=dict)
    subscriber_quarantined: dict[tuple[str, str], int] = field(default_factory=dict)
    latest_published_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    delivered_ingested_ms: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class BatchResult:
    """Every output of a batch (each with its :attr:`Produce.source`), the bookkeeping
    of each ingress partition it read, its counts and its audit decision templates."""

    outputs: list[Produce]
    partitions: dict[IngressPartition, PartitionBatch]
    counts: BatchCounts
    templates: list[dict[str, Any]]


def bump(counter: dict[Any, int], key: Any, amount: int = 1) -> None:
    counter[key] = counter.get(key, 0) + amount
