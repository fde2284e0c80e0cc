"""The API's wiring: every adapter the handlers use, created and started in one place."""

from __future__ import annotations

import logging
import threading
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from ecoshare.adapters.kafka_admin import TopicSpec, ensure_topics
from ecoshare.api.audit_index import AuditIndex
from ecoshare.api.auth import Authenticator
from ecoshare.api.compacted import CompactedTopicFollower, CompactedTopicWriter, FollowedChange
from ecoshare.api.config import ApiConfig
from ecoshare.api.decoding import FramedDecoder
from ecoshare.api.limits import RateLimiter
from ecoshare.catalog import Catalog, load_catalog
from ecoshare.credentials import ApiKeyRecord, api_keys_topic
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.identity import partner_signing_key
from ecoshare.domain.partners import Partner
from ecoshare.governance.worker import governed_topics
from ecoshare.sdk import Publisher
from ecoshare.webhooks import (
    WebhookDispatcher,
    WebhookPolicy,
    WebhookRecord,
    dead_letter_topic,
    webhooks_topic,
)

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)


def _models(records: dict[str, dict[str, Any]], model: type[ModelT]) -> dict[str, ModelT]:
    valid: dict[str, ModelT] = {}
    for key, value in records.items():
        try:
            valid[key] = model.model_validate(value)
        except ValidationError:
            log.warning("invalid %s record %r ignored", model.__name__, key)
    return valid


class HealthHook:
    """The ecosystem health monitor, when :mod:`ecoshare.health.monitor` is installed.

    HEALTH HOOK: ``HealthMonitor(bootstrap_servers=, names=, registry=)`` is created with
    the API's own CollectorRegistry, started with the API and stopped with it; its
    ``report()`` is served at ``GET /v1/health/ecosystem``. Without the module that
    endpoint answers 503.
    """

    def __init__(self, config: ApiConfig, registry: CollectorRegistry) -> None:
        self.monitor: Any = None
        self.unavailable_reason = "the health monitor (ecoshare.health) is not installed"
        try:
            from ecoshare.health.monitor import HealthMonitor
        except ImportError as exc:
            if getattr(exc, "name", "") not in ("ecoshare.health", "ecoshare.health.monitor"):
                log.exception("the health monitor could not be imported")
                self.unavailable_reason = f"the health monitor could not be imported: {exc}"
            return
        self.monitor = HealthMonitor(
            bootstrap_servers=config.bootstrap_servers, names=config.names, registry=registry
        )

    def start(self) -> None:
        if self.monitor is None:
            return
        try:
            self.monitor.start()
        except Exception as exc:  # the API serves without it rather than not at all
            log.exception("the health monitor did not start")
            self.unavailable_reason = f"the health monitor did not start: {exc}"
            self.monitor = None

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()

    def report(self) -> dict[str, Any] | None:
        if self.monitor is None:
            return None
        try:
            return dict(self.monitor.report())
        except Exception as exc:
            log.exception("the health monitor failed to report")
            self.unavailable_reason = f"the health monitor failed to report: {exc}"
            return None


class ApiContext:
    """Adapters shared by the request handlers; :meth:`start` before serving."""

    def __init__(self, config: ApiConfig, registry: CollectorRegistry) -> None:
        self.config = config
        self.registry = registry
        names = config.names
        self.names = names
        self.keys_topic = api_keys_topic(names)
        self.webhooks_topic = webhooks_topic(names)
        self.catalog: Catalog = load_catalog(config.schemas_dir)
        self.follower = CompactedTopicFollower(
            config.bootstrap_servers,
            [
                names.partners,
                names.agreements,
                names.consents,
                self.keys_topic,
                self.webhooks_topic,
            ],
            name="api-state",
        )
        self.writer = CompactedTopicWriter(config.bootstrap_servers)
        self.decoder = FramedDecoder(config.schema_registry_url)
        self.audit = AuditIndex(config.bootstrap_servers, names.audit)
        limits = config.limits
        self.auth = Authenticator(
            operator_key=config.operator_key,
            follower=self.follower,
            keys_topic=self.keys_topic,
            partners_topic=names.partners,
            partner_limiter=RateLimiter(limits.rate_per_second, limits.rate_burst),
            operator_limiter=RateLimiter(
                limits.operator_rate_per_second, limits.operator_rate_burst
            ),
        )
        self.webhooks = WebhookDispatcher(
            bootstrap_servers=config.bootstrap_servers,
            names=names,
            decoder=self.decoder,
            master_secret=config.signing_secret,
            policy=WebhookPolicy(
                max_attempts=limits.webhook_max_attempts,
                backoff_seconds=limits.webhook_backoff_seconds,
                backoff_max_seconds=limits.webhook_backoff_max_seconds,
                timeout_seconds=limits.webhook_timeout_seconds,
            ),
        )
        self.health = HealthHook(config, registry)
        self._publishers: dict[tuple[str, int], Publisher] = {}
        self._publishers_lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def stopping(self) -> threading.Event:
        """Set when the API shuts down; long-running streams end on it."""
        return self._stopping

    def start(self) -> None:
        ensure_topics(
            self.config.bootstrap_servers,
            [
                TopicSpec.compacted(self.keys_topic),
                TopicSpec.compacted(self.webhooks_topic),
                TopicSpec(dead_letter_topic(self.names), 1),
                *governed_topics(
                    self.names,
                    self.catalog.event_types,
                    self.config.ingress_partitions,
                    self.config.topic_policy,
                ),
            ],
            policy=self.config.topic_policy,
        )
        self.follower.add_listener(self._on_change)
        self.follower.start()
        self.audit.start()
        self.webhooks.reconcile(self.webhook_records().values())
        self.health.start()

    def stop(self) -> None:
        self._stopping.set()
        self.health.stop()
        self.webhooks.stop()
        self.audit.stop()
        self.follower.stop()
        with self._publishers_lock:
            for publisher in self._publishers.values():
                try:
                    publisher.flush(5)
                except Exception:  # shutting down: nothing more to do about it
                    log.warning("a publisher did not flush on shutdown")
        self.writer.close()

    def _on_change(self, change: FollowedChange) -> None:
        if change.topic == self.webhooks_topic:
            self.webhooks.reconcile(self.webhook_records().values())

    # -- state -------------------------------------------------------------------------

    def partners(self) -> dict[str, Partner]:
        return _models(self.follower.records(self.names.partners), Partner)

    def partner(self, partner_id: str) -> Partner | None:
        return self.partners().get(partner_id)

    def agreements(self) -> dict[str, Agreement]:
        return _models(self.follower.records(self.names.agreements), Agreement)

    def consents(self) -> dict[str, ConsentRecord]:
        return _models(self.follower.records(self.names.consents), ConsentRecord)

    def api_keys(self) -> dict[str, ApiKeyRecord]:
        return _models(self.follower.records(self.keys_topic), ApiKeyRecord)

    def webhook_records(self) -> dict[str, WebhookRecord]:
        return _models(self.follower.records(self.webhooks_topic), WebhookRecord)

    def write(self, topic: str, key: str, value: BaseModel | None) -> None:
        """Write a record (None deletes it) and wait until this API's state shows it."""
        if value is None:
            written = self.writer.delete(topic, key)
        else:
            written = self.writer.put(topic, key, value.model_dump(mode="json"))
        self.follower.wait_for_write(written)

    def publisher(self, partner: Partner) -> Publisher:
        """A publisher signing as ``partner`` with its current key generation."""
        key = (partner.partner_id, partner.key_generation)
        with self._publishers_lock:
            found = self._publishers.get(key)
            if found is None:
                found = Publisher(
                    bootstrap_servers=self.config.bootstrap_servers,
                    schema_registry_url=self.config.schema_registry_url,
                    partner_id=partner.partner_id,
                    signing_key=partner_signing_key(
                        self.config.signing_secret, partner.partner_id, partner.key_generation
                    ),
                    schemas_dir=self.config.schemas_dir,
                    topic_prefix=self.names.prefix,
                )
                self._publishers[key] = found
            return found
