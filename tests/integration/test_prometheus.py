"""A real Prometheus scrapes the platform's metrics endpoint and evaluates our PromQL.

The ``start_prometheus`` fixture starts ``/usr/bin/prometheus`` (Debian package
``prometheus``, installed by ``.ci/install-system-packages``) as a child process that
scrapes the given targets every second, and stops it after the test. Point it at any
``host:port`` serving ``/metrics``: here an endpoint of :func:`start_metrics_server`,
elsewhere a running worker.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
import yaml
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


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None
    )
    if found is None:
        pytest.fail(
            "prometheus not found: run .ci/install-system-packages (Debian package prometheus)"
        )
    return found


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
    binary = prometheus_binary()

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
    for _ in range(4):
        governance.record_delivered("carrier-1", "StoreStatusChanged")
    governance.record_withheld("carrier-1", "StoreStatusChanged", "row_filter")
    governance.record_withheld("carrier-2", "StoreStatusChanged", "consent_missing")
    governance.record_quarantined(
        "StoreStatusChanged", "schema_invalid", ["carrier-1", "carrier-2"]
    )

    prometheus = start_prometheus({"ecoshare-worker": [target]})

    received = prometheus.wait_for(
        "sum by (subscriber) (ecoshare_subscriber_events_received_total)",
        lambda found: len(found) == 2,
    )
    assert values_by(received, "subscriber") == {"carrier-1": 6.0, "carrier-2": 2.0}
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
    governance.record_delivered("carrier-1", "StoreStatusChanged")
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
