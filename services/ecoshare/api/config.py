"""Settings of the HTTP API: the platform's, plus limits read from ``ECOSHARE_API_*``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecoshare.errors import ConfigurationError
from ecoshare.secrets import operator_key, signing_secret
from ecoshare.settings import Settings
from ecoshare.topics import TopicNames, TopicPolicy


class ApiLimits(BaseSettings):
    """Request limits and webhook delivery policy of the API."""

    model_config = SettingsConfigDict(env_prefix="ECOSHARE_API_", frozen=True, extra="ignore")

    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    max_batch_events: int = Field(default=1000, ge=1, description="Events in one publish.")
    rate_per_second: float = Field(
        default=50.0, gt=0, description="Sustained requests per second per partner key."
    )
    rate_burst: int = Field(default=200, ge=1, description="Burst of requests per partner key.")
    operator_rate_per_second: float = Field(default=500.0, gt=0)
    operator_rate_burst: int = Field(default=5000, ge=1)
    webhook_max_attempts: int = Field(
        default=6, ge=1, description="Attempts per delivery before it is dead-lettered."
    )
    webhook_backoff_seconds: float = Field(
        default=0.5, gt=0, description="Wait before the first retry; doubles per attempt."
    )
    webhook_backoff_max_seconds: float = Field(default=30.0, gt=0)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_allowed_hosts: str = Field(
        default="",
        description="Comma-separated host names webhooks may target; empty allows any.",
    )
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)

    @property
    def allowed_webhook_hosts(self) -> frozenset[str]:
        return frozenset(
            host.strip().lower() for host in self.webhook_allowed_hosts.split(",") if host.strip()
        )


@dataclass(frozen=True)
class ApiConfig:
    """Everything the API process needs, resolved once at start."""

    bootstrap_servers: str
    schema_registry_url: str
    names: TopicNames
    operator_key: str
    signing_secret: bytes
    schemas_dir: Path
    ingress_partitions: int
    limits: ApiLimits
    topic_policy: TopicPolicy = field(default_factory=TopicPolicy)

    @classmethod
    def from_settings(cls, settings: Settings, limits: ApiLimits | None = None) -> ApiConfig:
        if not settings.bootstrap_servers or not settings.schema_registry_url:
            raise ConfigurationError(
                "the API needs ECOSHARE_BOOTSTRAP_SERVERS and ECOSHARE_SCHEMA_REGISTRY_URL"
            )
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            schema_registry_url=settings.schema_registry_url,
            names=TopicNames(settings.topic_prefix),
            operator_key=operator_key(settings),
            signing_secret=signing_secret(settings),
            schemas_dir=settings.schemas_dir,
            ingress_partitions=settings.ingress_partitions,
            limits=limits or ApiLimits(),
            topic_policy=settings.topic_policy,
        )
