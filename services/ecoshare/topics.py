"""Names of the platform's topics and registry subjects, in one place."""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES = ("StoreStatusChanged", "LocationAvailability")


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
