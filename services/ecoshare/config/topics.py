"""Names of the platform's topics and registry subjects, in one place."""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES = ("StoreStatusChanged", "LocationAvailability")
DAY_MS = 86_400_000
# The audit trail is the record of every decision; ten years unless told otherwise,
# never a broker's default of seven days.
DEFAULT_AUDIT_RETENTION_DAYS = 3650


@dataclass(frozen=True, slots=True)
class TopicPolicy:
    """How durable the topics the platform creates are.

    ``None`` replication settings mean "as the cluster's size allows" (three copies and
    ``min.insync.replicas=2`` on three brokers or more, one copy on one broker).
    ``audit_retention_days`` of -1 keeps the audit trail forever.
    """

    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS

    @property
    def audit_retention_ms(self) -> int:
        return -1 if self.audit_retention_days < 0 else self.audit_retention_days * DAY_MS


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Topic names under an optional prefix (tests use a fresh uuid prefix each)."""

    prefix: str = ""

    def ingress(self, event_type: str) -> str:
        return f"{self.prefix}ingress.{event_type}"

    def delivery(self, subscriber_id: str, event_type: str) -> str:
        return f"{self.prefix}deliver.{subscriber_id}.{event_type}"

    @property
    def partners(self) -> str:
        return f"{self.prefix}ecoshare.partners"

    @property
    def agreements(self) -> str:
        return f"{self.prefix}ecoshare.agreements"

    @property
    def consents(self) -> str:
        return f"{self.prefix}ecoshare.consents"

    @property
    def audit(self) -> str:
        return f"{self.prefix}ecoshare.audit"

    @property
    def quarantine(self) -> str:
        return f"{self.prefix}ecoshare.quarantine"

    @property
    def progress(self) -> str:
        """Per-ingress-partition checkpoints and the duplicate-id log of the workers."""
        return f"{self.prefix}ecoshare.progress"

    @property
    def schemas(self) -> str:
        return f"{self.prefix}_schemas"

    def control_topics(self) -> tuple[str, ...]:
        return (self.partners, self.agreements, self.consents)


def value_subject(topic: str) -> str:
    """Confluent TopicNameStrategy subject of a topic's values."""
    return f"{topic}-value"


def api_keys_topic(names: TopicNames) -> str:
    """The compacted topic holding the API key records (see
    :class:`ecoshare.domain.credentials.ApiKeyRecord`)."""
    return f"{names.prefix}ecoshare.api-keys"
