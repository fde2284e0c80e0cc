"""Reading the audit topic: its blocks decoded into decision records, one rule for bad ones.

Both the API's audit index (a fold of its follower) and the CLI's one-shot reads
(:func:`scan_audit`) decode audit messages here, so a block that does not parse is
skipped, with a warning, the same way everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from ecoshare.adapters.kafka.reading import read_topics_to_end
from ecoshare.codec.audit_blocks import (
    AuditFormatError,
    DecisionRecord,
    QuarantineRecord,
    decode_audit_block,
)

log = logging.getLogger(__name__)

AuditRecord = DecisionRecord | QuarantineRecord


def audit_records(value: bytes | None, where: str) -> list[AuditRecord]:
    """The records of one audit message; none (and a warning) when it does not parse."""
    try:
        return list(decode_audit_block(value))
    except AuditFormatError as exc:
        log.warning("audit message %s skipped: %s", where, exc)
        return []


def scan_audit(
    bootstrap_servers: str, topic: str, *, timeout_seconds: float = 60.0
) -> Iterator[AuditRecord]:
    """Every decision on the audit topic, each partition read to its end.

    Raises the errors of :func:`~ecoshare.adapters.kafka.reading.read_topics_to_end`.
    """
    for message in read_topics_to_end(bootstrap_servers, [topic], timeout_seconds=timeout_seconds):
        where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        yield from audit_records(message.value(), where)
