"""The API's wiring: every adapter the handlers use, created and started in one place."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.adapters.kafka.control_records import CompactedState, ControlRecordWriter
from ecoshare.adapters.kafka.follower import TopicFollower
from ecoshare.adapters.kafka.writer import AcknowledgedWriter
from ecoshare.adapters.metrics import start_metrics_server, stop_metrics_server
from ecoshare.api.audit_index import AuditIndex
from ecoshare.api.auth import Authenticator
from ecoshare.api.config import ApiConfig
from ecoshare.api.limits import RequestRateLimiter
from ecoshare.catalog.event_catalog import Catalog, load_catalog
from ecoshare.codec.framed import FramedDecoder
from ecoshare.config.topics import api_keys_topic
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.credentials import ApiKeyRecord
from ecoshare.domain.identity import partner_signing_key
from ecoshare.domain.partners import Partner
from ecoshare.governance.topics import governed_topics
from ecoshare.sdk import Publisher
from ecoshare.webhooks import (
    WebhookDispatcher,
    WebhookPolicy,
    WebhookRecord,
    dead_letter_topic,
    webhooks_topic,
)
from ecoshare.webhooks.targets import Listener, TargetPolicy, listeners_of, system_resolver

log = logging.getLogger(__name__)


class PlatformListeners:
    """The platform's own services, which no webhook may reach.

    The broker, the registry and the API's own ports come from the configuration (names
    resolved once); the worker metrics ports from the ``endpoints.json`` that
    ``ecoshare up`` writes, re-read when it changes.
    """

    def __init__(self, config: ApiConfig) -> None:
        self._static = listeners_of(
            [
                *config.bootstrap_servers.split(","),
                config.schema_registry_url,
                *config.own_listeners,
            ],
            system_resolver,
        )
        self._endpoints = (
            config.state_dir / "endpoints.json" if config.state_dir is not None else None
        )
        self._seen: tuple[float, list[Listener]] = (-1.0, [])
        self._lock = threading.Lock()

    def _from_endpoints(self, path: Path) -> list[Listener]:
        try:
            modified = path.stat().st_mtime
        except OSError:
            return []
        with self._lock:
            if modified == self._seen[0]:
                return self._seen[1]
        try:
            data = json.loads(path.read_text())
            urls = [str(url) for url in dict(data.get("metrics_urls") or {}).values()]
            urls.append(str(data.get("api_url") or ""))
        except (OSError, ValueError, TypeError, AttributeError):
            urls = []
        found = listeners_of(urls, system_resolver)
        with self._lock:
            self._seen = (modified, found)
        return found

    def __call__(self) -> list[Listener]:
        if self._endpoints is None:
            return list(self._static)
        return [*self._static, *self._from_endpoints(self._endpoints)]


class HealthHook:
    """The ecosystem health monitor, when :mod:`ecoshare.health.monitor` is installed.

    HEALTH HOOK: ``HealthMonitor(bootstrap_servers=, names=, registry=, followers=)`` is
    created with the API's own CollectorRegistry and fed by the API's followers (the
    audit follower the audit index reads too, and the control-state follower), started
    with the API and stopped with it; its ``report()`` is served at
    ``GET /v1/health/ecosystem``. Without the module that endpoint answers 503.
    """

    def __init__(
        self, config: ApiConfig, registry: CollectorRegistry, followers: list[TopicFollower]
    ) -> None:
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
            bootstrap_servers=config.bootstrap_servers,
            names=config.names,
            registry=registry,
            followers=followers,
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
        models: dict[str, type[BaseModel]] = {
            names.partners: Partner,
            names.agreements: Agreement,
            names.consents: ConsentRecord,
            self.keys_topic: ApiKeyRecord,
            self.webhooks_topic: WebhookRecord,
        }
        self.state = CompactedState(models)
        self.follower = TopicFollower(
            config.bootstrap_servers, list(models), name="api-state", read_committed=False
        )
        self.follower.add_fold(self.state)
        self.follower.add_listener(self._on_change)
        self.writer = AcknowledgedWriter(config.bootstrap_servers)
        # Every record this API writes is acknowledged and visible in its own state before
        # the request answers, so the next request reads what this one wrote.
        self.records = ControlRecordWriter(
            config.bootstrap_servers,
            {
                "partner": names.partners,
                "agreement": names.agreements,
                "consent": names.consents,
                "api_key": self.keys_topic,
                "webhook": self.webhooks_topic,
            },
            writer=self.writer,
            on_written=lambda written: self.follower.wait_for(
                (written.topic, written.partition), written.offset
            ),
        )
        self.decoder = FramedDecoder(config.schema_registry_url)
        # One follower of the audit topic feeds both the audit index and the health
        # monitor: the audit trail is the largest topic the API reads.
        self.audit_follower = TopicFollower(
            config.bootstrap_servers, [names.audit], name="api-audit", read_committed=True
        )
        self.audit = AuditIndex(self.audit_follower, config.bootstrap_servers, names.audit)
        limits = config.limits
        self.auth = Authenticator(
            operator_key=config.operator_key,
            state=self.state,
            follower=self.follower,
            keys_topic=self.keys_topic,
            partners_topic=names.partners,
            partner_limiter=RequestRateLimiter(limits.rate_per_second, limits.rate_burst),
            operator_limiter=RequestRateLimiter(
                limits.operator_rate_per_second, limits.operator_rate_burst
            ),
            failure_limiter=RequestRateLimiter(
                limits.auth_failure_per_second, limits.auth_failure_burst
            ),
        )
        self.webhook_targets = TargetPolicy(
            allowed=limits.webhook_allowlist, listeners=PlatformListeners(config)
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
            targets=self.webhook_targets,
        )
        self.health = HealthHook(config, registry, [self.audit_follower, self.follower])
        self._publishers: dict[tuple[str, int], Publisher] = {}
        self._publishers_lock = threading.Lock()
        self._stopping = threading.Event()
        self._metrics_server: Any = None

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
        self.follower.start()
        if not self.follower.catch_up(30.0):
            log.warning("the API state did not catch up with its topics within 30s")
        self.audit_follower.start()
        self.webhooks.reconcile(self.active_webhook_records())
        self.health.start()
        limits = self.config.limits
        if limits.metrics_port:
            # The internal scrape port: no key, so it binds where only Prometheus reaches.
            self._metrics_server, _port = start_metrics_server(
                self.registry, limits.metrics_host, limits.metrics_port
            )

    def stop(self) -> None:
        self._stopping.set()
        if self._metrics_server is not None:
            stop_metrics_server(self._metrics_server)
            self._metrics_server = None
        self.health.stop()
        self.webhooks.stop()
        self.audit_follower.stop()
        self.follower.stop()
        with self._publishers_lock:
            for publisher in self._publishers.values():
                try:
                    publisher.flush(5)
                except Exception:  # shutting down: nothing more to do about it
                    log.warning("a publisher did not flush on shutdown")
        self.writer.close()

    def _on_change(self, message: Any) -> None:
        # A revoked key or a disabled partner stops its webhooks as soon as this
        # follower applies the change, whichever process wrote it.
        if message.topic() in (self.webhooks_topic, self.keys_topic, self.names.partners):
            self.webhooks.reconcile(self.active_webhook_records())

    # -- state -------------------------------------------------------------------------

    def partners(self) -> dict[str, Partner]:
        return self.state.models(self.names.partners)

    def partner(self, partner_id: str) -> Partner | None:
        return self.partners().get(partner_id)

    def agreements(self) -> dict[str, Agreement]:
        return self.state.models(self.names.agreements)

    def consents(self) -> dict[str, ConsentRecord]:
        return self.state.models(self.names.consents)

    def api_keys(self) -> dict[str, ApiKeyRecord]:
        return self.state.models(self.keys_topic)

    def webhook_records(self) -> dict[str, WebhookRecord]:
        return self.state.models(self.webhooks_topic)

    def webhook_active(
        self,
        record: WebhookRecord,
        partners: dict[str, Partner] | None = None,
        keys: dict[str, ApiKeyRecord] | None = None,
    ) -> bool:
        """Whether a webhook may deliver: subscriber enabled, registering key not revoked."""
        partner = (partners if partners is not None else self.partners()).get(record.subscriber)
        if partner is None or not partner.enabled:
            return False
        if record.created_by_key is None:
            return True
        key = (keys if keys is not None else self.api_keys()).get(record.created_by_key)
        return key is not None and not key.revoked

    def active_webhook_records(self) -> list[WebhookRecord]:
        partners, keys = self.partners(), self.api_keys()
        return [
            record
            for record in self.webhook_records().values()
            if self.webhook_active(record, partners, keys)
        ]

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
                    max_event_bytes=self.config.max_event_bytes,
                )
                self._publishers[key] = found
            return found
