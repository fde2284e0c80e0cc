"""``ecoshare status``, ``health`` and ``api``: is the platform up, is the ecosystem well."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ecoshare.cli.common import (
    Endpoints,
    OutputOption,
    check_output,
    console,
    endpoints,
    errors,
    print_json,
    settings,
)
from ecoshare.errors import EcoshareError
from ecoshare.terminal.tables import print_table

_PROBE_SECONDS = 3.0


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("health")(health)
    app.command("api")(api)


def _metric_sums(text: str, names: tuple[str, ...]) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    sums = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in sums:
                sums[sample.name] += sample.value
    return sums


def _probe(where: Endpoints) -> list[dict[str, Any]]:
    import httpx
    from confluent_kafka import KafkaException

    from ecoshare.adapters.kafka.admin import admin_client

    rows: list[dict[str, Any]] = []
    try:
        topics = admin_client(where.bootstrap_servers, quiet=True).list_topics(
            timeout=_PROBE_SECONDS
        )
        rows.append(
            {
                "component": "broker",
                "address": where.bootstrap_servers,
                "up": True,
                "detail": f"{len(topics.topics)} topics, {len(topics.brokers)} broker(s)",
            }
        )
    except KafkaException as exc:
        rows.append(
            {
                "component": "broker",
                "address": where.bootstrap_servers,
                "up": False,
                "detail": str(exc),
            }
        )

    def http(component: str, url: str, detail: Any) -> None:
        try:
            response = httpx.get(url, timeout=_PROBE_SECONDS)
            response.raise_for_status()
            rows.append(
                {"component": component, "address": url, "up": True, "detail": detail(response)}
            )
        except httpx.HTTPError as exc:
            rows.append(
                {
                    "component": component,
                    "address": url,
                    "up": False,
                    "detail": f"{type(exc).__name__}: {exc}",
                }
            )

    if where.schema_registry_url:
        http(
            "registry",
            f"{where.schema_registry_url}/subjects",
            lambda response: f"{len(response.json())} subjects",
        )
    for name, url in sorted(where.metrics_urls.items()):
        if not name.startswith("worker"):
            continue

        def worker_detail(response: Any) -> str:
            sums = _metric_sums(
                response.text,
                (
                    "ecoshare_events_received_total",
                    "ecoshare_events_delivered_total",
                    "ecoshare_events_quarantined_total",
                ),
            )
            return (
                f"{sums['ecoshare_events_received_total']:.0f} events received, "
                f"{sums['ecoshare_events_delivered_total']:.0f} deliveries, "
                f"{sums['ecoshare_events_quarantined_total']:.0f} quarantined"
            )

        http(name, url, worker_detail)
    rows.append(_stalled_partitions_row(where))
    if where.api_url:
        http("api", f"{where.api_url}/healthz", lambda response: response.json().get("status"))
    return rows


STALLED_AFTER_SECONDS = 30.0


def stalled_partitions(metrics_texts: list[str]) -> dict[tuple[str, str], float]:
    """(topic, partition) -> seconds stalled, for partitions stalled past the threshold.

    From the workers' ``ecoshare_ingress_partition_stalled_seconds``; the largest report
    wins when two workers report a partition around a rebalance.
    """
    from prometheus_client.parser import text_string_to_metric_families

    stalled: dict[tuple[str, str], float] = {}
    for text in metrics_texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != "ecoshare_ingress_partition_stalled_seconds":
                    continue
                if sample.value >= STALLED_AFTER_SECONDS:
                    key = (sample.labels["topic"], sample.labels["partition"])
                    stalled[key] = max(stalled.get(key, 0.0), sample.value)
    return stalled


def _stalled_partitions_row(where: Endpoints) -> dict[str, Any]:
    """One line saying whether any ingress partition has lag and makes no progress."""
    import httpx

    texts = []
    for name, url in sorted(where.metrics_urls.items()):
        if name.startswith("worker"):
            try:
                texts.append(httpx.get(url, timeout=_PROBE_SECONDS).text)
            except httpx.HTTPError:
                continue  # its own row says it is down
    stalled = stalled_partitions(texts)
    detail = (
        ", ".join(
            f"{topic}[{partition}] no progress for {seconds:.0f} s"
            for (topic, partition), seconds in sorted(stalled.items())
        )
        if stalled
        else f"none with lag and no progress for {STALLED_AFTER_SECONDS:.0f} s"
    )
    return {
        "component": "partitions",
        "address": "ingress",
        "up": True,
        "stalled": len(stalled),
        "detail": detail,
    }


def status(output: OutputOption = "table") -> None:
    """Health of the broker, the registry, each governance worker and the API."""
    check_output(output)
    where = endpoints(settings(), check_broker=False)
    rows = _probe(where)
    if output == "json":
        print_json(rows)
    else:
        table = Table(title="ecoshare platform")
        for column in ("component", "state", "address", "detail"):
            table.add_column(column)
        for row in rows:
            state = "[green]up[/]" if row["up"] else "[red]down[/]"
            if row.get("stalled"):
                state = "[red]stalled[/]"
            table.add_row(row["component"], state, row["address"], str(row["detail"]))
        print_table(table, console)
    down = [row["component"] for row in rows if not row["up"]]
    if down:
        raise EcoshareError(f"not answering: {', '.join(down)}")
    stalled = sum(int(row.get("stalled", 0)) for row in rows)
    if stalled:
        raise EcoshareError(f"{stalled} ingress partition(s) have lag and make no progress")


def health(
    api_url: Annotated[
        str | None, typer.Option(help="The API's base URL.", envvar="ECOSHARE_API_URL")
    ] = None,
    output: OutputOption = "table",
) -> None:
    """The ecosystem health report (from the API's health monitor)."""
    check_output(output)
    import httpx

    from ecoshare.config.secrets import operator_key

    base = settings()
    url = api_url or endpoints(base, check_broker=False).api_url
    if not url:
        raise EcoshareError(
            "no API is running: start `ecoshare up` (with the API) or pass --api-url"
        )
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/v1/health/ecosystem",
            headers={"Authorization": f"Bearer {operator_key(base)}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise EcoshareError(f"the API at {url} did not answer: {exc}") from exc
    if response.status_code != 200:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise EcoshareError(f"the API answered {response.status_code}: {message}")
    report = response.json()
    if output == "json":
        print_json(report)
        return
    from ecoshare.terminal.health_report import render_report

    render_report(report, console)


def api() -> None:
    """Run the HTTP API against ECOSHARE_BOOTSTRAP_SERVERS and _SCHEMA_REGISTRY_URL."""
    from ecoshare.api.__main__ import main as api_main

    code = api_main()
    if code:
        errors.print("the API could not start; see the message above")
    raise typer.Exit(code)
