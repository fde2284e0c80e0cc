"""Platform settings, read from ``ECOSHARE_*`` environment variables.

Only entrypoints (CLI, services) construct :class:`Settings`; everything below them
receives plain values, so the domain never reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecoshare.config.topics import DEFAULT_AUDIT_RETENTION_DAYS, TopicPolicy

REPO_ROOT = Path(__file__).resolve().parents[3]


class Settings(BaseSettings):
    """Every knob of the platform. Unset connection URLs mean "start a local one"."""

    model_config = SettingsConfigDict(env_prefix="ECOSHARE_", frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; unset starts a local broker chosen by "
        "ECOSHARE_BROKER (auto: Kafka where Java is found, else tansu).",
    )
    schema_registry_url: str | None = Field(
        default=None, description="Schema registry URL; unset starts the embedded registry."
    )
    broker_port: int = Field(
        default=0, ge=0, le=65535, description="Embedded broker port, 0 = free."
    )
    registry_port: int = Field(default=0, ge=0, le=65535, description="Embedded registry port.")
    api_port: int = Field(default=0, ge=0, le=65535, description="HTTP API port, 0 = free.")
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Worker metrics port.")
    bind_host: str = Field(default="127.0.0.1", description="Interface the HTTP services bind.")
    state_dir: Path = Field(default=Path(".ecoshare"), description="Runtime state directory.")
    schemas_dir: Path = Field(default=REPO_ROOT / "schemas", description="Avro event catalog.")
    topic_prefix: str = Field(default="", description="Prefix of every platform topic name.")
    ingress_partitions: int = Field(default=4, ge=1, description="Partitions of ingress topics.")
    broker: Literal["auto", "tansu", "kafka"] = Field(
        default="auto",
        description="Broker `ecoshare up` starts when ECOSHARE_BOOTSTRAP_SERVERS is unset: "
        "kafka (Apache Kafka, needs Java), tansu (embedded, memory only) or auto "
        "(kafka where a Java runtime and the Kafka jars are found, tansu otherwise).",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Where the kafka broker keeps its logs across restarts; "
        "unset = <state_dir>/kafka-data.",
    )
    kafka_nodes: int = Field(
        default=1, ge=1, le=5, description="KRaft nodes of the kafka broker `up` starts."
    )
    replication_factor: int | None = Field(
        default=None, ge=1, description="Replication of created topics; unset = min(3, brokers)."
    )
    min_insync_replicas: int | None = Field(
        default=None, ge=1, description="min.insync.replicas of created topics; unset = 2 at RF 3."
    )
    worker_id: str | None = Field(
        default=None,
        description="Stable name of a worker's slot, its transactional id on Kafka (a "
        "restarted worker fences its predecessor); `up` names its workers worker-0, worker-1, ...",
    )
    exactly_once: Literal["auto", "transactions", "checkpoints"] = Field(
        default="auto",
        description="How workers deliver exactly once: Kafka transactions, or the progress "
        "checkpoints for brokers without them; auto asks the cluster.",
    )
    audit_retention_days: int = Field(
        default=DEFAULT_AUDIT_RETENTION_DAYS,
        ge=-1,
        description="Retention of the audit topic; -1 keeps it forever.",
    )
    workers: int = Field(default=2, ge=1, description="Governance worker processes in `up`.")
    signing_secret: str | None = Field(
        default=None,
        description="Master secret from which partner signing keys derive; "
        "unset generates one in the state directory.",
    )
    operator_key: str | None = Field(
        default=None, description="Operator API key; unset generates one in the state directory."
    )
    max_event_bytes: int = Field(default=65536, ge=64, description="Largest accepted event.")
    dedup_window_seconds: int = Field(default=86400, ge=1, description="Duplicate-id window.")
    dedup_capacity: int = Field(
        default=500_000, ge=1000, description="Event ids remembered per ingress partition."
    )
    engine: Literal["auto", "native", "python"] = Field(
        default="auto",
        description="Governance core: the compiled native one, the Python reference, "
        "or auto (native when the extension is built).",
    )
    batch_size: int = Field(default=2000, ge=1, description="Events per governance batch.")
    audit_checkpoint_interval_ms: int = Field(
        default=1000,
        ge=0,
        description="Checkpoints mode: how often, at most, the audit blocks and checkpoints "
        "of acknowledged batches are written together (0: after every batch).",
    )
    log_level: str = Field(default="INFO", description="Log level of the services.")

    @property
    def topic_policy(self) -> TopicPolicy:
        return TopicPolicy(
            replication_factor=self.replication_factor,
            min_insync_replicas=self.min_insync_replicas,
            audit_retention_days=self.audit_retention_days,
        )
