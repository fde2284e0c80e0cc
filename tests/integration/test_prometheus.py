"""A real Prometheus scrapes the platform's metrics endpoint and evaluates our PromQL.

The ``start_prometheus`` fixture starts ``/usr/bin/prometheus`` (Debian package
``prometheus``, installed by ``.ci/install-system-packages``) as a child process that
scrapes the given targets every second, and stops it after the test. Point it at any
``host:port`` serving ``/metrics``: here an endpoint of :func:`start_metrics_server`,
elsewhere a running worker.

The last test runs the platform as ``ecoshare up`` does (two workers and the API) and
checks, through Prometheus, that ``increase()`` of every counter equals the true count
of what the test sent, and that every dashboard query returns data.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from ecoshare.adapters.metrics import (
    GovernanceMetrics,
    HealthMetrics,
    HttpMetrics,
    register_build_info,
    start_metrics_server,
    stop_metrics_server,
)
from ecoshare.adapters.processes import free_port, spawn, stop
from ecoshare.config.secrets import operator_key, signing_secret
from ecoshare.config.settings import Settings
from ecoshare.config.topics import TopicNames
from ecoshare.domain.identity import partner_signing_key
from ecoshare.domain.partners import Role
from ecoshare.embedded.platform import Platform
from ecoshare.governance.control_plane import control_writer
from ecoshare.governance.engine import BatchCounts
from ecoshare.governance.observer import WorkerObserver
from ecoshare.sdk import Publisher
from tests.integration.governed_platform import (
    agreement,
    consent,
    location_availability,
    partner,
    put_all,
    store_status,
)
from tests.integration.system_tools import prometheus_tool

REPO = Path(__file__).resolve().parents[2]
ALERT_RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
SCRAPE_INTERVAL_SECONDS = 1.0


class PrometheusQueryError(AssertionError):
    """Prometheus answered a query with an error (bad PromQL, timeout...)."""


@dataclass
class RunningPrometheus:
    """A Prometheus child process and a small client for its HTTP API."""

    url: str
    process: Popen[bytes]
    log_path: Path
    client: httpx.Client = field(repr=False)

    def log_tail(self, characters: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns ``data`` or raises PrometheusQueryError."""
        response = self.client.get(f"{self.url}/api/v1/{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusQueryError(
                f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        data = self.api("query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        assert isinstance(result, list)
        return result

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        *,
        timeout_seconds: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``predicate(result)`` holds; fail with the last result."""
        deadline = time.monotonic() + timeout_seconds
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(SCRAPE_INTERVAL_SECONDS / 4)
        pytest.fail(
            f"{expr!r} never satisfied the condition; last result {result}\n{self.log_tail()}"
        )


StartPrometheus = Callable[..., RunningPrometheus]


def write_config(
    path: Path,
    targets: Mapping[str, Sequence[str]],
    rule_files: Sequence[Path] = (),
) -> None:
    """A Prometheus config scraping ``targets`` (job name -> host:port list) every second."""
    interval = f"{int(SCRAPE_INTERVAL_SECONDS * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rule_file) for rule_file in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(job_targets)}]}
            for job, job_targets in targets.items()
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[StartPrometheus]:
    """Factory: ``start_prometheus({"job": ["127.0.0.1:port"]}, rule_files=[...])``."""
    started: list[RunningPrometheus] = []
    binary = prometheus_tool("prometheus")

    def start(
        targets: Mapping[str, Sequence[str]],
        *,
        rule_files: Sequence[Path] = (),
        ready_timeout_seconds: float = 30.0,
    ) -> RunningPrometheus:
        workdir = tmp_path / f"prometheus-{len(started)}"
        (workdir / "data").mkdir(parents=True)
        config_path = workdir / "prometheus.yml"
        write_config(config_path, targets, rule_files)
        port = free_port()
        log_path = workdir / "prometheus.log"
        process = spawn(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            log_path=log_path,
            cwd=workdir,
        )
        running = RunningPrometheus(
            url=f"http://127.0.0.1:{port}",
            process=process,
            log_path=log_path,
            client=httpx.Client(timeout=5.0),
        )
        started.append(running)
        deadline = time.monotonic() + ready_timeout_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}\n{running.log_tail()}")
            try:
                if running.client.get(f"{running.url}/-/ready").status_code == 200:
                    return running
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"prometheus not ready after {ready_timeout_seconds}s\n{running.log_tail()}")

    yield start
    for running in started:
        running.client.close()
        stop(running.process)


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[CollectorRegistry, GovernanceMetrics, str]]:
    """A registry with the whole catalog, served on a free port: (registry, governance, target)."""
    registry = CollectorRegistry()
    governance = GovernanceMetrics(registry)
    HealthMetrics(registry)
    HttpMetrics(registry, "test")
    register_build_info(registry, "test", "0.0.0")
    server, port = start_metrics_server(registry, "127.0.0.1", 0)
    try:
        yield registry, governance, f"127.0.0.1:{port}"
    finally:
        stop_metrics_server(server)


def observer_of(governance: GovernanceMetrics) -> WorkerObserver:
    """The worker's observer on ``governance``: the path every count takes in a worker."""
    return WorkerObserver(
        governance,
        names=TopicNames(),
        event_types=("LocationAvailability", "StoreStatusChanged"),
        ingress_partitions=1,
    )


def values_by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in result}


def test_prometheus_scrapes_a_governance_counter(
    start_prometheus: StartPrometheus,
    metrics_endpoint: tuple[CollectorRegistry, GovernanceMetrics, str],
) -> None:
    _registry, governance, target = metrics_endpoint
    governance.events_received.labels("shop-1", "StoreStatusChanged").inc(3)
    governance.events_received.labels("shop-2", "LocationAvailability").inc()

    prometheus = start_prometheus({"ecoshare-worker": [target]})

    result = prometheus.wait_for(
        'ecoshare_events_received_total{job="ecoshare-worker"}',
        lambda found: len(found) == 2,
    )
    assert values_by(result, "publisher") == {"shop-1": 3.0, "shop-2": 1.0}
    assert {sample["metric"]["event_type"] for sample in result} == {
        "StoreStatusChanged",
        "LocationAvailability",
    }
    up = prometheus.query('up{job="ecoshare-worker"}')
    assert values_by(up, "instance") == {target: 1.0}

    # A later increment reaches Prometheus on a following scrape.
    governance.events_received.labels("shop-1", "StoreStatusChanged").inc(2)
    prometheus.wait_for(
        'ecoshare_events_received_total{publisher="shop-1"}',
        lambda found: bool(found) and float(found[0]["value"][1]) == 5.0,
    )


def test_accounting_law_holds_in_prometheus(
    start_prometheus: StartPrometheus,
    metrics_endpoint: tuple[CollectorRegistry, GovernanceMetrics, str],
) -> None:
    _registry, governance, target = metrics_endpoint
    # What the engine counts for a batch, applied the way the worker applies it.
    event_type = "StoreStatusChanged"
    counts = BatchCounts(
        admitted={("shop-1", event_type): 5},
        delivered={("carrier-1", event_type): 4},
        withheld={
            ("carrier-1", event_type, "row_filter"): 1,
            ("carrier-2", event_type, "consent_missing"): 5,
        },
        quarantined={(event_type, "unauthenticated_publisher"): 1},
        quarantined_publishers={("unknown", event_type): 1},
        subscriber_received={("carrier-1", event_type): 6, ("carrier-2", event_type): 6},
        subscriber_quarantined={("carrier-1", event_type): 1, ("carrier-2", event_type): 1},
    )
    observer_of(governance).batch_completed(counts, 6, 0.01, time.time())

    prometheus = start_prometheus({"ecoshare-worker": [target]})

    received = prometheus.wait_for(
        "sum by (subscriber) (ecoshare_subscriber_events_received_total)",
        lambda found: len(found) == 2,
    )
    assert values_by(received, "subscriber") == {"carrier-1": 6.0, "carrier-2": 6.0}
    unaccounted = prometheus.query(
        "sum by (subscriber) (ecoshare_subscriber_events_received_total)"
        " - sum by (subscriber) (ecoshare_events_delivered_total or"
        " 0 * ecoshare_subscriber_events_received_total)"
        " - sum by (subscriber) (ecoshare_events_withheld_total)"
        " - sum by (subscriber) (ecoshare_subscriber_events_quarantined_total)"
    )
    assert values_by(unaccounted, "subscriber") == {"carrier-1": 0.0, "carrier-2": 0.0}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's template variables with values Prometheus accepts."""
    replacements = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m"}
    for variable, value in replacements.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def dashboard_expressions() -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(DASHBOARDS.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def test_dashboard_and_alert_promql_is_valid_and_rules_evaluate(
    start_prometheus: StartPrometheus,
    metrics_endpoint: tuple[CollectorRegistry, GovernanceMetrics, str],
) -> None:
    _registry, governance, target = metrics_endpoint
    observer_of(governance).batch_completed(
        BatchCounts(
            admitted={("shop-1", "StoreStatusChanged"): 1},
            delivered={("carrier-1", "StoreStatusChanged"): 1},
            subscriber_received={("carrier-1", "StoreStatusChanged"): 1},
        ),
        1,
        0.01,
        time.time(),
    )
    governance.delivery_latency_seconds.labels("carrier-1").observe(0.02)
    governance.consent_enforcement_delay_seconds.observe(0.1)
    governance.last_event_timestamp_seconds.labels("shop-1", "StoreStatusChanged").set(time.time())
    governance.set_consumer_lag("ingress.StoreStatusChanged", 0, 3)

    prometheus = start_prometheus({"ecoshare-worker": [target]}, rule_files=[ALERT_RULES])
    prometheus.wait_for('up{job="ecoshare-worker"} == 1')

    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    for expr in expressions:
        prometheus.query(grafana_to_promql(expr))  # raises on invalid PromQL

    rules_data = prometheus.api("rules")
    groups = {group["name"]: group for group in rules_data["groups"]}
    expected_groups = {group["name"] for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]}
    assert set(groups) == expected_groups

    def all_rules_evaluated_ok() -> bool:
        data = prometheus.api("rules")
        return all(rule["health"] == "ok" for group in data["groups"] for rule in group["rules"])

    deadline = time.monotonic() + 30
    while not all_rules_evaluated_ok():
        if time.monotonic() > deadline:
            pytest.fail(f"rules not all healthy: {prometheus.api('rules')}")
        time.sleep(SCRAPE_INTERVAL_SECONDS / 2)

    # The worker is up and fresh, so neither availability nor freshness alerts fire.
    alerts = prometheus.api("alerts")["alerts"]
    firing = {alert["labels"]["alertname"] for alert in alerts if alert["state"] == "firing"}
    assert not firing & {"EcoshareWorkerDown", "EcoshareNoWorkerRunning"}
    assert "EcoshareFreshnessSlaBreached" not in firing


# -- a running platform, scraped ------------------------------------------------------

TYPE = "StoreStatusChanged"
AVAILABILITY = "LocationAvailability"
POSTNL_EVENTS = range(1, 401)  # odd numbers in Amsterdam (1012), even in Eindhoven (5611)
SHOPS_EVENTS = range(1001, 1201)  # all in Amsterdam, published_at an hour back
BACK_DATED = timedelta(hours=1)  # within the event type's 24 h freshness SLA
CITY_EVENTS = range(1, 151)
UNSIGNED, BAD_FRAMING, DUPLICATES = 8, 6, 6  # the burst of bad records


def _availability(number: int) -> dict[str, Any]:
    return location_availability(50_000 + number, publisher_id="city", available=number % 60)


def _postnl_event(number: int) -> dict[str, Any]:
    return store_status(
        number,
        postal_code="1012 AB" if number % 2 else "5611 AB",
        subject="owner-1" if number % 3 else None,
    )


def _shops_event(number: int) -> dict[str, Any]:
    return store_status(number, publisher_id="shops", published_at=datetime.now(UTC) - BACK_DATED)


def _expected_counts() -> dict[str, dict[tuple[str, ...], float]]:
    """The true count of every worker counter for the run, by label values (zeros left
    out), derived from what the test sends and the agreements in force."""
    admitted = len(POSTNL_EVENTS) + len(SHOPS_EVENTS)
    bad = UNSIGNED + BAD_FRAMING + DUPLICATES
    south = sum(1 for n in POSTNL_EVENTS if n % 2 == 0)
    candidates = ("carrier-north", "carrier-south", "consumer-app")
    return {
        "ecoshare_events_received_total": {
            ("postnl", TYPE): len(POSTNL_EVENTS) + BAD_FRAMING + DUPLICATES,
            ("shops", TYPE): len(SHOPS_EVENTS),
            ("city", AVAILABILITY): len(CITY_EVENTS),
            ("unknown", TYPE): UNSIGNED,
        },
        "ecoshare_events_admitted_total": {
            ("postnl", TYPE): len(POSTNL_EVENTS),
            ("shops", TYPE): len(SHOPS_EVENTS),
            ("city", AVAILABILITY): len(CITY_EVENTS),
        },
        "ecoshare_events_quarantined_total": {
            (TYPE, "unauthenticated_publisher"): UNSIGNED,
            (TYPE, "bad_framing"): BAD_FRAMING,
            (TYPE, "duplicate_event_id"): DUPLICATES,
        },
        "ecoshare_subscriber_events_received_total": {
            **{(subscriber, TYPE): admitted + bad for subscriber in candidates},
            ("consumer-app", AVAILABILITY): len(CITY_EVENTS),
        },
        "ecoshare_events_delivered_total": {
            ("carrier-north", TYPE): admitted,
            ("carrier-south", TYPE): south,
            ("consumer-app", TYPE): admitted,
            ("consumer-app", AVAILABILITY): len(CITY_EVENTS),
        },
        "ecoshare_events_withheld_total": {
            ("carrier-south", TYPE, "row_filter"): admitted - south,
        },
        "ecoshare_subscriber_events_quarantined_total": {
            (subscriber, TYPE): bad for subscriber in candidates
        },
        "ecoshare_delivery_latency_seconds_count": {
            ("carrier-north",): admitted,
            ("carrier-south",): south,
            ("consumer-app",): admitted + len(CITY_EVENTS),
        },
        "ecoshare_consent_enforcement_delay_seconds_count": {(): 1},
    }


# Label names each checked series is summed by (the order of the expected tuples).
LABELS_OF = {
    "ecoshare_events_received_total": ("publisher", "event_type"),
    "ecoshare_events_admitted_total": ("publisher", "event_type"),
    "ecoshare_events_quarantined_total": ("event_type", "reason"),
    "ecoshare_subscriber_events_received_total": ("subscriber", "event_type"),
    "ecoshare_events_delivered_total": ("subscriber", "event_type"),
    "ecoshare_events_withheld_total": ("subscriber", "event_type", "reason"),
    "ecoshare_subscriber_events_quarantined_total": ("subscriber", "event_type"),
    "ecoshare_delivery_latency_seconds_count": ("subscriber",),
    "ecoshare_consent_enforcement_delay_seconds_count": (),
}


@dataclass
class ScrapedPlatform:
    platform: Platform
    api_url: str
    prometheus: RunningPrometheus
    secret: bytes
    started: float


API_STARTUP_SECONDS = 180.0  # the machine may be busy; starting is not what is tested


@contextmanager
def _api_process(platform: Platform, log_path: Path) -> Iterator[tuple[str, str]]:
    """The API (with the health monitor) as ``ecoshare up`` runs it; yields its URL and
    the ``host:port`` of its internal metrics port (the public ``/metrics`` needs the
    operator key, so Prometheus scrapes the internal one, as in deploy/prometheus)."""
    host = platform.settings.bind_host
    port = free_port(host)
    metrics_port = free_port(host)
    process = spawn(
        [sys.executable, "-m", "ecoshare.api"],
        log_path=log_path,
        env=platform.child_env()
        | {
            "ECOSHARE_API_PORT": str(port),
            "ECOSHARE_API_METRICS_PORT": str(metrics_port),
            "ECOSHARE_API_METRICS_HOST": host,
        },
    )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + API_STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"the API exited with {process.returncode}; see {log_path}")
            try:
                httpx.get(f"{url}/healthz", timeout=1.0)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the API did not answer; see {log_path}")
                time.sleep(0.2)
        yield url, f"{host}:{metrics_port}"
    finally:
        stop(process)


@pytest.fixture
def scraped_platform(
    bootstrap_servers: str,
    registry_url: str,
    tmp_path: Path,
    start_prometheus: StartPrometheus,
) -> Iterator[ScrapedPlatform]:
    """The platform as ``ecoshare up`` runs it (two workers and the API, on the session's
    broker and registry), its partners and agreements applied, and a Prometheus
    scraping every process each second."""
    started = time.time()
    settings = Settings(
        bootstrap_servers=bootstrap_servers,
        schema_registry_url=registry_url,
        state_dir=tmp_path / "state",
        topic_prefix=f"m{uuid.uuid4().hex[:8]}.",
        workers=2,
        ingress_partitions=4,
    )
    with (
        Platform(settings, start_api=False) as platform,
        _api_process(platform, tmp_path / "api.log") as (api_url, api_metrics),
    ):
        with control_writer(platform.bootstrap_servers, platform.names) as writer:
            put_all(
                writer,
                partners=[
                    partner("postnl", Role.PUBLISHER, Role.OPERATOR),
                    partner("shops", Role.PUBLISHER),
                    partner("city", Role.PUBLISHER),
                    partner("carrier-north", Role.SUBSCRIBER),
                    partner("carrier-south", Role.SUBSCRIBER),
                    partner("consumer-app", Role.SUBSCRIBER),
                ],
                agreements=[
                    agreement(
                        "north",
                        "carrier-north",
                        {"event_id": "deliver", "status": "deliver", "contact_name": "deliver"},
                    ),
                    agreement(
                        "south",
                        "carrier-south",
                        {"event_id": "deliver", "status": "deliver", "postal_code": "deliver"},
                        row_filters=[
                            {"field": "postal_code", "op": "prefix", "prefix_range": ["50", "99"]}
                        ],
                    ),
                    agreement("app", "consumer-app", {"event_id": "deliver", "status": "deliver"}),
                    agreement(
                        "app-lockers",
                        "consumer-app",
                        {"event_id": "deliver", "available": "deliver", "capacity": "deliver"},
                        event_types=[AVAILABILITY],
                    ),
                ],
                consents=[consent("c-north", "owner-1", "carrier-north")],
            )
        prometheus = start_prometheus(
            {
                "ecoshare-worker": [
                    f"{worker.host}:{worker.metrics_port}" for worker in platform.workers
                ],
                "ecoshare-api": [api_metrics],
            },
            rule_files=[ALERT_RULES],
        )
        yield ScrapedPlatform(platform, api_url, prometheus, signing_secret(settings), started)


def _publisher(scraped: ScrapedPlatform, partner_id: str) -> Publisher:
    platform = scraped.platform
    return Publisher(
        bootstrap_servers=platform.bootstrap_servers,
        schema_registry_url=platform.schema_registry_url,
        partner_id=partner_id,
        signing_key=partner_signing_key(scraped.secret, partner_id, 1),
        schemas_dir=platform.settings.schemas_dir,
        topic_prefix=platform.names.prefix,
    )


def _worker_total(platform: Platform, name: str, **labels: str) -> float:
    return sum(worker.metric(name, **labels) for worker in platform.workers)


def _wait_for_workers(
    platform: Platform, name: str, expected: float, timeout_seconds: float = 300.0
) -> None:
    deadline = time.monotonic() + timeout_seconds
    found = _worker_total(platform, name)
    while found != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: the workers count {found}, expected {expected}")
        time.sleep(0.2)
        found = _worker_total(platform, name)


def _exact_increase(
    prometheus: RunningPrometheus, job: str, name: str, labels: Sequence[str], window: str
) -> dict[tuple[str, ...], float]:
    """``increase()`` over ``window`` summed over the job's instances, each evaluated at
    the time of its own last scrape: no extrapolation past the last sample, and none
    before the first since every series starts at 0, so the result is exact."""
    total: dict[tuple[str, ...], float] = {}
    for scrape in prometheus.query(f'timestamp(up{{job="{job}"}})'):
        instance = scrape["metric"]["instance"]
        by = ", ".join(labels)
        expr = f'sum by ({by}) (increase({name}{{instance="{instance}"}}[{window}]))'
        data = prometheus.api("query", query=expr, time=str(scrape["value"][1]))
        for sample in data["result"]:
            key = tuple(sample["metric"].get(label, "") for label in labels)
            total[key] = total.get(key, 0.0) + float(sample["value"][1])
    return total


def test_prometheus_increase_equals_the_true_count_of_every_counter_and_every_panel_has_data(
    scraped_platform: ScrapedPlatform,
) -> None:
    platform, prometheus = scraped_platform.platform, scraped_platform.prometheus
    worker_targets = len(platform.workers)

    # Every series knowable in advance reaches Prometheus at 0, on every worker, before
    # the first event: that is what lets increase() count the first batch.
    prometheus.wait_for(
        'count(ecoshare_events_withheld_total{subscriber="consumer-app",'
        ' event_type="LocationAvailability", reason="row_filter"} == 0)',
        lambda found: bool(found) and float(found[0]["value"][1]) == worker_targets,
        timeout_seconds=180,
    )
    prometheus.wait_for(
        'count(ecoshare_events_received_total{publisher=~"city|unknown"} == 0)',
        lambda found: bool(found) and float(found[0]["value"][1]) == 2 * 2 * worker_targets,
    )

    # First half of the good events.
    with (
        _publisher(scraped_platform, "postnl") as postnl,
        _publisher(scraped_platform, "shops") as shops,
        _publisher(scraped_platform, "city") as city,
    ):
        half = len(POSTNL_EVENTS) // 2
        for number in POSTNL_EVENTS[:half]:
            postnl.publish(_postnl_event(number), TYPE)
        for number in SHOPS_EVENTS[: len(SHOPS_EVENTS) // 2]:
            shops.publish(_shops_event(number), TYPE)
        for number in CITY_EVENTS[: len(CITY_EVENTS) // 2]:
            city.publish(_availability(number), AVAILABILITY)
    first_half = half + len(SHOPS_EVENTS) // 2 + len(CITY_EVENTS) // 2
    _wait_for_workers(platform, "ecoshare_events_received_total", first_half)

    # A consent withdrawal while two workers run: observed once, not once per worker.
    with control_writer(platform.bootstrap_servers, platform.names) as writer:
        put_all(
            writer,
            consents=[
                consent("c-north", "owner-1", "carrier-north").model_copy(
                    update={"withdrawn_at": datetime.now(UTC)}
                )
            ],
        )
    _wait_for_workers(platform, "ecoshare_consent_enforcement_delay_seconds_count", 1)

    # The rest, and a burst of bad records in one go.
    with (
        _publisher(scraped_platform, "postnl") as postnl,
        _publisher(scraped_platform, "shops") as shops,
        _publisher(scraped_platform, "city") as city,
    ):
        for number in POSTNL_EVENTS[half:]:
            postnl.publish(_postnl_event(number), TYPE)
        for number in SHOPS_EVENTS[len(SHOPS_EVENTS) // 2 :]:
            shops.publish(_shops_event(number), TYPE)
        for number in CITY_EVENTS[len(CITY_EVENTS) // 2 :]:
            city.publish(_availability(number), AVAILABILITY)
        postnl.flush()
        _, key, good = postnl.encode(_postnl_event(POSTNL_EVENTS[0]), TYPE)
        raw = Producer({"bootstrap.servers": platform.bootstrap_servers})
        for _ in range(UNSIGNED):
            raw.produce(platform.names.ingress(TYPE), value=good, key=key)
        raw.flush(30)
        for index in range(BAD_FRAMING):
            postnl.produce_encoded(TYPE, key, b"\x07not a framed event %d" % index)
        for number in POSTNL_EVENTS[:DUPLICATES]:
            postnl.publish(_postnl_event(number), TYPE)
    expected = _expected_counts()
    total_received = sum(expected["ecoshare_events_received_total"].values())
    _wait_for_workers(platform, "ecoshare_events_received_total", total_received)
    prometheus.wait_for(
        "sum(ecoshare_events_received_total)",
        lambda found: bool(found) and float(found[0]["value"][1]) == total_received,
    )
    # Both workers decide with the withdrawal by now, and it still counts once.
    assert _worker_total(platform, "ecoshare_consent_enforcement_delay_seconds_count") == 1

    # Every worker counter, exactly.
    window = f"{int(time.time() - scraped_platform.started) + 120}s"
    worker_counters = {
        sample.name
        for worker in platform.workers
        for sample in worker.samples()
        if sample.name.endswith("_total")
    }
    assert worker_counters <= set(expected), worker_counters - set(expected)
    measured: dict[str, dict[tuple[str, ...], float]] = {}
    for name, true_counts in expected.items():
        found = _exact_increase(prometheus, "ecoshare-worker", name, LABELS_OF[name], window)
        measured[name] = {key: round(value, 6) for key, value in found.items() if round(value, 6)}
        assert measured[name] == true_counts, name
    # Every candidate subscriber was counted for every received message, and agrees.
    received = measured["ecoshare_events_received_total"]
    received_of_type = sum(
        value for (_, event_type), value in received.items() if event_type == TYPE
    )
    subscriber_received = measured["ecoshare_subscriber_events_received_total"]
    for subscriber in ("carrier-north", "carrier-south", "consumer-app"):
        assert subscriber_received[(subscriber, TYPE)] == received_of_type

    # Latency runs from the platform's ingest, freshness from the publisher's clock: the
    # shops' hour of back-dating shows in the data age, not in the deliveries.
    latency = _exact_increase(
        prometheus,
        "ecoshare-worker",
        "ecoshare_delivery_latency_seconds_sum",
        ("subscriber",),
        window,
    )
    deliveries = expected["ecoshare_delivery_latency_seconds_count"][("carrier-north",)]
    assert latency[("carrier-north",)] < deliveries * BACK_DATED.total_seconds() / 10
    (age,) = prometheus.query(
        'time() - max(ecoshare_last_event_timestamp_seconds{publisher="shops"})'
    )
    assert float(age["value"][1]) >= BACK_DATED.total_seconds()
    # The API's counter of freshness breaches: none in this run, on declared series.
    breaches = prometheus.wait_for("ecoshare_freshness_sla_breaches_total", timeout_seconds=60)
    assert breaches and all(float(sample["value"][1]) == 0 for sample in breaches)

    # As a dashboard asks it, now: never less than the truth, and more only by the
    # extrapolation to the end of the range, at most one average scrape gap's worth of
    # each series' increase (1.1 gaps, Prometheus' extrapolation threshold).
    for name, true_counts in expected.items():
        (result,) = prometheus.query(f"sum(increase({name}[{window}]))")
        (per_gap,) = prometheus.query(
            f"sum(increase({name}[{window}]) / clamp_min(count_over_time({name}[{window}]) - 1, 1))"
        )
        true_total = sum(true_counts.values())
        tolerance = 1.1 * float(per_gap["value"][1]) + 1e-6
        assert true_total - 1e-6 <= float(result["value"][1]) <= true_total + tolerance, name

    # Every panel query returns data and no error; the balance panel reads 0.
    partners = httpx.get(
        f"{scraped_platform.api_url}/v1/partners",
        headers={"X-API-Key": operator_key(platform.settings)},
        timeout=10.0,
    )
    assert partners.status_code == 200, partners.text
    prometheus.wait_for("sum(rate(ecoshare_http_requests_total[1m]))")
    prometheus.wait_for("max(ecoshare_partner_reciprocity_ratio)", timeout_seconds=60)
    prometheus.wait_for("max(ecoshare_publisher_coverage_ratio)", timeout_seconds=60)
    for expr in dashboard_expressions():
        # A series born a moment ago needs a second scrape before rate() has data.
        prometheus.wait_for(grafana_to_promql(expr).replace("[1h]", f"[{window}]"))
    unaccounted = [
        expr
        for expr in dashboard_expressions()
        if "ecoshare_events_admitted_total) or" in expr
        or "ecoshare_subscriber_events_received_total) or" in expr
    ]
    assert len(unaccounted) == 2
    for expr in unaccounted:
        (result,) = prometheus.query(expr)
        assert float(result["value"][1]) == 0.0, expr
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert all(rule["health"] == "ok" for rule in rules), rules
    imbalance = next(rule for rule in rules if rule["name"] == "EcoshareAccountingImbalance")
    assert imbalance["state"] == "inactive"
