"""Every topic the platform needs, created in one place before any service starts.

A production cluster runs with topic auto-creation off, so the init step of a
deployment (``ecoshare init``, run by ``ecoshare-init`` in docker-compose.yml) creates
them all, with the topic policy's replication, ``min.insync.replicas`` and audit
retention. The services still ensure what they use (idempotent), so a platform whose
init ran with an older catalog heals itself; delivery topics are created on demand,
one per subscriber and event type.
"""

from __future__ import annotations

from collections.abc import Iterable

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.config.topics import TopicNames, TopicPolicy, api_keys_topic
from ecoshare.governance.topics import governed_topics
from ecoshare.webhooks.registration import dead_letter_topic, webhooks_topic


def platform_topics(
    names: TopicNames, event_types: Iterable[str], partitions: int, policy: TopicPolicy
) -> list[TopicSpec]:
    """Control plane, governance data plane and the API's own compacted topics."""
    return [
        *governed_topics(names, event_types, partitions, policy),
        TopicSpec.compacted(api_keys_topic(names)),
        TopicSpec.compacted(webhooks_topic(names)),
        TopicSpec(dead_letter_topic(names), 1),
    ]


def provision_topics(
    bootstrap_servers: str,
    names: TopicNames,
    event_types: Iterable[str],
    partitions: int,
    policy: TopicPolicy,
) -> list[str]:
    """Create the platform's topics that do not exist yet; return those created."""
    return ensure_topics(
        bootstrap_servers, platform_topics(names, event_types, partitions, policy), policy=policy
    )
