"""The production topology (docker-compose.yml and deploy/) is consistent with the code.

No Docker engine runs in CI, so these tests read the files: every service can be built or
pulled, every ECOSHARE_* variable is a real setting, every mounted file exists, ports do
not clash, Prometheus scrapes services that exist, and the dashboard and the alert rules
query only metrics of the catalog.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ecoshare.adapters.metrics import (
    GovernanceMetrics,
    HealthMetrics,
    HttpMetrics,
    register_build_info,
    series_names,
)
from ecoshare.api.config import ApiLimits
from ecoshare.config.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"

SETTING_VARIABLES = frozenset(
    f"ECOSHARE_{name.upper()}" for name in Settings.model_fields
) | frozenset(f"ECOSHARE_API_{name.upper()}" for name in ApiLimits.model_fields)
CLI_COMMANDS = frozenset({"up", "init", "worker", "api", "registry", "schemas", "apply"})
# Labels Prometheus itself adds or that histograms carry, on top of the catalog's.
PROMETHEUS_LABELS = frozenset({"le", "job", "instance"})
CATALOG_LABELS = frozenset(
    {
        "publisher",
        "subscriber",
        "partner",
        "event_type",
        "reason",
        "controller",
        "agreement",
        "topic",
        "partition",
        "service",
        "method",
        "route",
        "status",
        "version",
    }
)
# Series not from the catalog that the rules and dashboards may use.
PROMETHEUS_SERIES = frozenset({"up"})
PROMQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
    }
)


# ---------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE_FILE)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    assert found
    return found


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment in either compose syntax, as a mapping."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return {item.partition("=")[0]: item.partition("=")[2] for item in raw}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def with_defaults(text: str) -> str:
    """``text`` as compose sees it when no variable is set: ``${VAR:-default}`` -> default."""
    return re.sub(r"(?<!\$)\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", text)


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path, container path) of every bind mount of a service."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield with_defaults(str(volume["source"])), str(volume["target"])
            continue
        source, _, rest = with_defaults(str(volume)).partition(":")
        if source.startswith((".", "/", "~")):
            yield source, rest.split(":", 1)[0]


def named_volumes(service: dict[str, Any]) -> Iterator[str]:
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                yield str(volume["source"])
            continue
        source, _, rest = with_defaults(str(volume)).partition(":")
        if rest and not source.startswith((".", "/", "~")):
            yield source


def published_ports(service: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(host interface, host port) of every published port ("0.0.0.0" = all)."""
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if "published" in port:
                yield str(port.get("host_ip", "0.0.0.0")), int(port["published"])
            continue
        parts = str(port).split("/", 1)[0].rsplit(":", 2)
        if len(parts) == 3:
            yield parts[0] or "0.0.0.0", int(parts[1])
        elif len(parts) == 2:
            yield "0.0.0.0", int(parts[0])


def service_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def interpolated_variables(text: str) -> set[str]:
    """Variables compose substitutes (``$$`` escapes a dollar for the container's shell)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?+][^}]*)?\}", text))


def catalog_series() -> frozenset[str]:
    registry = CollectorRegistry()
    GovernanceMetrics(registry)
    HealthMetrics(registry)
    HttpMetrics(registry, "api")
    register_build_info(registry, "api", "0.0.0")
    return series_names(registry)


def promql_metric_names(expr: str) -> set[str]:
    """Series names an expression selects (a small PromQL scanner, enough for our files)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", text):
        if match.group(1).lower() not in PROMQL_KEYWORDS:
            names.add(match.group(1))
    return names


def promql_label_names(expr: str) -> set[str]:
    """Label names an expression matches on or aggregates by."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text
    ):
        labels.update(label.strip() for label in grouping.split(",") if label.strip())
    labels.discard("__name__")
    return labels


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def dashboard_queries(node: Any) -> Iterator[str]:
    """Every PromQL expression of a Grafana dashboard (panel targets, nested rows)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def dashboard_variable_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            yield query


def alert_expressions() -> Iterator[tuple[str, str]]:
    for group in load_yaml(ALERT_RULES)["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


# ------------------------------------------------------------------- compose services


def test_promql_scanner_finds_metric_and_label_names() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, subscriber) (rate(ecoshare_delivery_latency_"
        'seconds_bucket{subscriber=~"$subscriber"}[$__rate_interval]))) > 1e-3 and up == 0'
    )
    assert promql_metric_names(expr) == {"ecoshare_delivery_latency_seconds_bucket", "up"}
    assert promql_label_names(expr) == {"le", "subscriber"}
    assert promql_metric_names('time() - max(ecoshare_a{x="a b"}) offset 5m') == {"ecoshare_a"}


def test_every_service_has_an_image_or_a_buildable_context(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is None:
            assert ":" in service["image"], f"{name}: pin the image tag"
            assert not service["image"].endswith(":latest"), name
            continue
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), name
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (context / dockerfile).is_file(), f"{name}: {dockerfile} missing"


def test_the_requested_topology_is_there(services: dict[str, dict[str, Any]]) -> None:
    # 4.x: the workers' KIP-848 consumer protocol, the version the local broker runs.
    assert services["kafka"]["image"] == "apache/kafka:4.4.0"
    assert services["schema-registry"]["image"] == "confluentinc/cp-schema-registry:7.7.1"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    kafka_env = environment_of(services["kafka"])
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert kafka_env["KAFKA_GROUP_CONSUMER_SESSION_TIMEOUT_MS"] == "6000"
    assert "zookeeper" not in services
    assert services["ecoshare-worker"]["deploy"]["replicas"] >= 2
    assert service_command(services["ecoshare-worker"]) == ["worker"]
    assert service_command(services["ecoshare-api"]) == ["api"]
    init = " ".join(service_command(services["ecoshare-init"]))
    assert init.index("ecoshare schemas register") < init.index("ecoshare apply -f ")


def test_kafka_listeners_are_consistent(services: dict[str, dict[str, Any]]) -> None:
    env = environment_of(services["kafka"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = {
        item.split("://")[0]: int(item.rsplit(":", 1)[1])
        for item in env["KAFKA_LISTENERS"].split(",")
    }
    advertised = {item.split("://")[0] for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert set(listeners) == set(protocols)
    assert advertised <= set(listeners)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert "SASL_PLAINTEXT" in protocols.values() or "SASL_SSL" in protocols.values()
    assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "a base64url UUID"
    # Only SASL listeners leave the compose network: the PLAINTEXT ones have no auth.
    published = {port for _, port in published_ports(services["kafka"])}
    for listener, port in listeners.items():
        if port in published:
            assert protocols[listener].startswith("SASL_"), listener
    bootstrap = environment_of(services["ecoshare-worker"])["ECOSHARE_BOOTSTRAP_SERVERS"]
    bootstrap_host, bootstrap_port = bootstrap.split(":")
    assert bootstrap_host == "kafka"
    assert int(bootstrap_port) == listeners[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]


def test_ecoshare_variables_are_settings(services: dict[str, dict[str, Any]]) -> None:
    used: set[str] = set()
    for service in services.values():
        used.update(key for key in environment_of(service) if key.startswith("ECOSHARE_"))
    compose_text = COMPOSE_FILE.read_text(encoding="utf-8")
    used.update(var for var in interpolated_variables(compose_text) if var.startswith("ECOSHARE_"))
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    used.update(re.findall(r"\b(ECOSHARE_[A-Z0-9_]+)=", dockerfile))
    env_example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    used.update(re.findall(r"^(ECOSHARE_[A-Z0-9_]+)=", env_example, re.MULTILINE))
    assert used, "no ECOSHARE_* variable found"
    assert used <= SETTING_VARIABLES, sorted(used - SETTING_VARIABLES)


def test_every_interpolated_variable_is_documented_in_env_example() -> None:
    compose_text = COMPOSE_FILE.read_text(encoding="utf-8")
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
    assert interpolated_variables(compose_text) <= documented


def test_ecoshare_services_run_known_cli_commands(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if not name.startswith("ecoshare-"):
            continue
        command = service_command(service)
        if service.get("entrypoint"):  # a shell line running several `ecoshare` commands
            invoked = re.findall(r"\becoshare\s+([a-z]+)", " ".join(command))
        else:
            invoked = command[:1]
        assert invoked, name
        assert set(invoked) <= CLI_COMMANDS, (name, invoked)


def test_host_ports_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for _interface, port in published_ports(service):
            assert port not in seen, f"host port {port}: {seen.get(port)} and {name}"
            seen[port] = name
    assert {8080, 8081, 9094} <= set(seen)


def test_replicated_services_publish_no_fixed_port(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if int(service.get("deploy", {}).get("replicas", 1)) > 1:
            assert not list(published_ports(service)), name
            assert "container_name" not in service, name


def test_mounted_host_paths_exist(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    mounts = 0
    for name, service in services.items():
        for source, _target in bind_mounts(service):
            assert not source.startswith(("/", "~")), f"{name}: {source} is outside the repo"
            assert (REPO / source).exists(), f"{name}: {source} does not exist"
            mounts += 1
        for volume in named_volumes(service):
            assert volume in declared, f"{name}: volume {volume} is not declared"
    assert mounts >= 5


def test_init_applies_a_valid_governance_file(services: dict[str, dict[str, Any]]) -> None:
    from ecoshare.config.governance_file import load_governance_file

    init = services["ecoshare-init"]
    applied = re.search(r"ecoshare apply -f (\S+)", " ".join(service_command(init)))
    assert applied
    mounts = {target: source for source, target in bind_mounts(init)}
    governance = load_governance_file(REPO / mounts[applied.group(1)])
    assert governance.document.partners
    assert governance.document.agreements


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dependency: {"condition": "service_started"} for dependency in depends}
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", dependency
            else:
                pytest.fail(f"{name} -> {dependency}: wait for health or completion")
    for name, service in services.items():
        if service.get("restart", "no") != "no":
            assert "healthcheck" in service, f"long-running {name} needs a healthcheck"
    assert services["ecoshare-worker"]["depends_on"]["ecoshare-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_dockerfile_builds_a_non_root_ecoshare_image() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    instructions = [
        line.strip()
        for line in dockerfile.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(line == "FROM python:3.11-slim" for line in instructions)
    assert re.search(r"^RUN pip install \.", dockerfile, re.MULTILINE)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["ecoshare"]' in instructions
    for line in instructions:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                if "*" not in source:
                    assert (REPO / source).exists(), source
    assert (REPO / "schemas").is_dir()


# ------------------------------------------------------------------------- prometheus


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    document = load_yaml(PROMETHEUS_CONFIG)
    assert isinstance(document, dict)
    return document


def test_prometheus_mounts_its_config_and_rules(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    prometheus = services["prometheus"]
    config_flag = next(f for f in service_command(prometheus) if f.startswith("--config.file="))
    container_config = config_flag.split("=", 1)[1]
    mounts = dict(bind_mounts(prometheus))
    host_dir = next(
        source for source, target in mounts.items() if container_config.startswith(target)
    )
    assert (REPO / host_dir / Path(container_config).name).resolve() == PROMETHEUS_CONFIG
    for rule_file in prometheus_config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).resolve() == ALERT_RULES.resolve()


def test_prometheus_scrapes_compose_services(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    scraped: dict[str, int] = {}
    for job in prometheus_config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                if host == "localhost":
                    assert job["job_name"] == "prometheus", "only Prometheus scrapes itself"
                    host = "prometheus"
                scraped[host] = int(port)
        for dns in job.get("dns_sd_configs", []):
            for dns_name in dns["names"]:
                scraped[dns_name.removeprefix("tasks.")] = int(dns["port"])
    assert set(scraped) <= set(services), set(scraped) - set(services)
    ecoshare = {
        name for name in services if name.startswith("ecoshare-") and name != "ecoshare-init"
    }
    assert ecoshare | {"schema-registry", "prometheus"} <= set(scraped)
    # The ports Prometheus scrapes are the ones the services are told to serve on.
    worker_env = environment_of(services["ecoshare-worker"])
    assert scraped["ecoshare-worker"] == int(worker_env["ECOSHARE_METRICS_PORT"])
    assert scraped["ecoshare-api"] == int(
        environment_of(services["ecoshare-api"])["ECOSHARE_API_METRICS_PORT"]
    )
    assert f"={scraped['schema-registry']}:" in " ".join(
        service_command(services["schema-registry"])
    )


def test_the_worker_job_is_the_one_the_alerts_watch(prometheus_config: dict[str, Any]) -> None:
    jobs = {job["job_name"] for job in prometheus_config["scrape_configs"]}
    rules = ALERT_RULES.read_text(encoding="utf-8")
    for job in re.findall(r'job=~?"([^"]+)"', rules):
        for name in job.split("|"):
            assert name in jobs, name


# ----------------------------------------------------------------- metrics in use


def test_alert_rules_use_only_catalog_metrics() -> None:
    catalog = catalog_series() | PROMETHEUS_SERIES
    expressions = list(alert_expressions())
    assert len(expressions) >= 5
    for alert, expr in expressions:
        names = promql_metric_names(expr)
        assert names, alert
        assert names <= catalog, (alert, names - catalog)
        labels = promql_label_names(expr)
        allowed = CATALOG_LABELS | PROMETHEUS_LABELS
        assert labels <= allowed, (alert, labels - allowed)


def test_alert_rules_have_severity_and_annotations() -> None:
    names = set()
    for group in load_yaml(ALERT_RULES)["groups"]:
        for rule in group["rules"]:
            names.add(rule["alert"])
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["annotations"]["description"], rule["alert"]
    assert {
        "EcoshareFreshnessSlaBreached",
        "EcoshareQuarantineSpike",
        "EcoshareConsumerLagGrowing",
        "EcoshareConsentEnforcementSlow",
        "EcoshareWorkerDown",
    } <= names


def test_required_alert_expressions() -> None:
    expressions = dict(alert_expressions())
    assert "ecoshare_last_event_timestamp_seconds" in expressions["EcoshareFreshnessSlaBreached"]
    assert "time()" in expressions["EcoshareFreshnessSlaBreached"]
    assert "rate(ecoshare_events_quarantined_total" in expressions["EcoshareQuarantineSpike"]
    assert (
        "deriv(ecoshare_ingress_consumer_lag_messages" in expressions["EcoshareConsumerLagGrowing"]
    )
    consent = expressions["EcoshareConsentEnforcementSlow"]
    assert "histogram_quantile(0.99" in consent
    assert "ecoshare_consent_enforcement_delay_seconds_bucket" in consent
    assert consent.strip().endswith("> 1")
    assert expressions["EcoshareWorkerDown"].strip() == 'up{job="ecoshare-worker"} == 0'


def test_dashboards_use_only_catalog_metrics() -> None:
    catalog = catalog_series() | PROMETHEUS_SERIES
    files = dashboard_files()
    assert files
    for path in files:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        queries = list(dashboard_queries(dashboard.get("panels", [])))
        assert len(queries) >= 10, path.name
        for expr in queries:
            names = promql_metric_names(expr)
            assert names, expr
            assert names <= catalog, (path.name, names - catalog)
            labels = promql_label_names(expr)
            assert labels <= CATALOG_LABELS | PROMETHEUS_LABELS, (expr, labels)
        for query in dashboard_variable_queries(dashboard):
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert match, query
            assert match.group(1) in catalog, query
            assert match.group(2) in CATALOG_LABELS, query


def test_dashboard_covers_the_ecosystem_views() -> None:
    dashboard = json.loads((DASHBOARDS / "ecoshare.json").read_text(encoding="utf-8"))
    used = set()
    for expr in dashboard_queries(dashboard["panels"]):
        used |= promql_metric_names(expr)
    assert {
        "ecoshare_events_received_total",
        "ecoshare_events_delivered_total",
        "ecoshare_events_withheld_total",
        "ecoshare_events_quarantined_total",
        "ecoshare_delivery_latency_seconds_bucket",
        "ecoshare_last_event_timestamp_seconds",
        "ecoshare_partner_reciprocity_ratio",
        "ecoshare_consent_enforcement_delay_seconds_bucket",
        "ecoshare_ingress_consumer_lag_messages",
    } <= used
    panel_ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


# ---------------------------------------------------------------------------- grafana


def test_grafana_provisioning_matches_the_mounts(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = {(REPO / source).resolve(): target for source, target in bind_mounts(grafana)}
    assert mounts[GRAFANA_PROVISIONING.resolve()] == "/etc/grafana/provisioning"

    providers = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "ecoshare.yml")["providers"]
    assert [provider["options"]["path"] for provider in providers] == [mounts[DASHBOARDS.resolve()]]

    datasources = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    uids = {source["uid"] for source in datasources}
    url = next(source["url"] for source in datasources if source["type"] == "prometheus")
    host, port = url.removeprefix("http://").split(":")
    assert host in services
    assert port == "9090"
    for path in dashboard_files():
        text = path.read_text(encoding="utf-8")
        for uid in re.findall(r'"type": "prometheus",\s*"uid": "([^"]+)"', text):
            assert uid in uids, (path.name, uid)
    home = environment_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).name).is_file()
