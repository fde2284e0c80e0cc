"""Reading one topic as a member of a consumer group, committing by hand.

For readers that must resume where their group left off and share partitions with
other instances (the webhook dispatcher, one group per webhook). It reads
``read_committed``: a batch a fenced governance worker aborted never reaches a reader.
A message's offset is committed only when the caller says so, after it settled it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from ecoshare.adapters.kafka.config import group_consumer_config
from ecoshare.adapters.kafka.errors import KafkaIoError

log = logging.getLogger(__name__)

# Errors a reader of a topic that may not exist yet sees in normal operation.
_EXPECTED = (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART)


class GroupReader:
    """Reads ``topic`` in ``group_id`` from the group's committed positions (else the
    start); call from one thread."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topic: str,
        *,
        session_timeout_ms: int = 6000,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.group_id = group_id
        self.topic = topic
        self._consumer = consumer_factory(
            group_consumer_config(
                bootstrap_servers,
                group_id,
                read_committed=True,
                session_timeout_ms=session_timeout_ms,
                overrides={
                    # The topic may appear later (a delivery topic appears with the
                    # first record governed for it): look for it every second.
                    "topic.metadata.refresh.interval.ms": 1000,
                    # The caller may spend minutes on one message (retries, backoff).
                    "max.poll.interval.ms": 600_000,
                },
            )
        )
        self._consumer.subscribe([topic])

    def poll(self, timeout_seconds: float) -> Message | None:
        """The next message, or None when none came in time.

        Raises KafkaIoError when the client fails; errors expected while the topic does
        not exist or is read to its end are not raised, others are logged.
        """
        try:
            message = self._consumer.poll(timeout_seconds)
        except KafkaException as exc:
            raise KafkaIoError(f"reading {self.topic} in {self.group_id}: {exc}") from exc
        if message is None:
            return None
        error = message.error()
        if error is not None:
            if error.code() not in _EXPECTED:
                log.warning("reading %s in %s: %s", self.topic, self.group_id, error)
            return None
        return message  # type: ignore[no-any-return]

    def commit(self, message: Message) -> None:
        """Commit past ``message`` (synchronously); KafkaIoError when it fails."""
        try:
            self._consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            raise KafkaIoError(f"committing {self.topic} in {self.group_id}: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(KafkaException, RuntimeError):
            self._consumer.close()
