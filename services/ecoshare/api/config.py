"""Settings of the HTTP API: the platform's, plus limits read from ``ECOSHARE_API_*``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecoshare.application.bootstrap import platform_connection
from ecoshare.config.secrets import operator_key, signing_secret
from ecoshare.config.settings import Settings
from ecoshare.config.topics import TopicNames, TopicPolicy
from ecoshare.webhooks.targets import AllowedTarget, parse_allowlist

DEFAULT_API_PORT = 8080
"""The API's port when ECOSHARE_API_PORT is 0 (``python -m ecoshare.api``)."""


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
        description=(
            "Comma-separated exceptions to the webhook target checks: host names or IP "
            "literals (optionally host:port) and CIDR networks that webhooks may reach "
            "over plain http and at non-public addresses. Empty: public https only."
        ),
    )
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    max_json_depth: int = Field(
        default=32, ge=2, le=1000, description="Deepest nesting of arrays and objects."
    )
    auth_failure_per_second: float = Field(
        default=1.0, gt=0, description="Sustained failed authentications per client address."
    )
    auth_failure_burst: int = Field(
        default=30, ge=1, description="Failed authentications per client address at once."
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Internal port serving /metrics without a key; 0 serves none.",
    )
    metrics_host: str = Field(default="127.0.0.1", description="Interface of metrics_port.")

    @property
    def webhook_allowlist(self) -> tuple[AllowedTarget, ...]:
        return parse_allowlist(self.webhook_allowed_hosts)


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
    state_dir: Path | None = None
    own_listeners: tuple[str, ...] = ()
    """``host:port`` of the API itself and of any internal metrics port."""
    max_event_bytes: int = 65536
    topic_policy: TopicPolicy = field(default_factory=TopicPolicy)

    @classmethod
    def from_settings(cls, settings: Settings, limits: ApiLimits | None = None) -> ApiConfig:
        connection = platform_connection(settings, "the API")
        limits = limits or ApiLimits()
        own = [f"{settings.bind_host}:{settings.api_port or DEFAULT_API_PORT}"]
        if limits.metrics_port:
            own.append(f"{limits.metrics_host}:{limits.metrics_port}")
        if settings.metrics_port:
            own.append(f"{settings.bind_host}:{settings.metrics_port}")
        return cls(
            bootstrap_servers=connection.bootstrap_servers,
            schema_registry_url=connection.schema_registry_url,
            names=TopicNames(settings.topic_prefix),
            operator_key=operator_key(settings),
            signing_secret=signing_secret(settings),
            schemas_dir=settings.schemas_dir,
            ingress_partitions=settings.ingress_partitions,
            limits=limits,
            state_dir=settings.state_dir,
            own_listeners=tuple(own),
            max_event_bytes=settings.max_event_bytes,
            topic_policy=settings.topic_policy,
        )
