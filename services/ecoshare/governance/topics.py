"""The topics the governance data plane needs, as specifications to create."""

from __future__ import annotations

from collections.abc import Iterable

from ecoshare.adapters.kafka.admin import TopicSpec
from ecoshare.config.topics import TopicNames, TopicPolicy


def governed_topics(
    names: TopicNames,
    event_types: Iterable[str],
    partitions: int,
    policy: TopicPolicy | None = None,
) -> list[TopicSpec]:
    """Topics the governance data plane needs (delivery topics are created on demand).

    Ingress topics stamp records with the broker's clock (LogAppendTime), so a record's
    timestamp is the platform's ingest time, whatever the publisher's clock says; brokers
    that ignore the setting (the embedded one) keep the producing client's time. The
    progress topic is compacted: its keys keep the latest snapshot of each ingress
    partition and the checkpoints after it (see ``ecoshare.governance.progress``).
    """
    policy = policy or TopicPolicy()
    specs = [
        TopicSpec(
            names.ingress(event_type), partitions, {"message.timestamp.type": "LogAppendTime"}
        )
        for event_type in event_types
    ]
    specs += [
        TopicSpec(names.audit, partitions, {"retention.ms": str(policy.audit_retention_ms)}),
        TopicSpec(names.quarantine, partitions),
        TopicSpec.compacted(names.progress, partitions),
    ]
    specs += [TopicSpec.compacted(topic) for topic in names.control_topics()]
    return specs
