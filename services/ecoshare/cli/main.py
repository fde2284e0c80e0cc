"""The ``ecoshare`` command: run the platform and govern the ecosystem from a shell.

Every command reads settings from ECOSHARE_* variables; commands that talk to a running
platform find it through ``.ecoshare/endpoints.json`` written by ``ecoshare up``.
Errors print a one-line message to stderr and exit non-zero (2 for bad input, 1 for
a failure of the platform).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ecoshare.cli import acl, catalog, events, governance, partners, status
from ecoshare.cli.common import (
    InputError,
    OutputOption,
    check_output,
    console,
    errors,
    print_json,
    quiet_third_party_warnings,
    settings,
)
from ecoshare.config.settings import Settings
from ecoshare.errors import ConfigurationError, EcoshareError
from ecoshare.terminal.tables import print_table

quiet_third_party_warnings()

app = typer.Typer(
    name="ecoshare",
    help="Governed, audited sharing of live business events between ecosystem partners.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
schemas_app = typer.Typer(
    help="The Avro event catalog and the schema registry.", no_args_is_help=True
)
app.add_typer(schemas_app, name="schemas")


@app.command()
def up(
    workers: Annotated[int | None, typer.Option(help="Governance worker processes.")] = None,
    api: Annotated[bool, typer.Option(help="Start the HTTP API.")] = True,
    broker: Annotated[
        str | None,
        typer.Option(
            help="Broker to start: kafka (Apache Kafka, durable, needs Java), tansu "
            "(embedded, in memory) or auto (kafka where Java is found, else tansu) "
            "[env ECOSHARE_BROKER, default auto].",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the kafka broker keeps its data; `up` again on the same directory "
            "finds everything again [default <state dir>/kafka-data].",
        ),
    ] = None,
    kafka_nodes: Annotated[
        int | None, typer.Option(help="KRaft nodes of the kafka broker (1 or 3).", min=1, max=5)
    ] = None,
) -> None:
    """Run the embedded platform in the foreground until Ctrl-C or SIGTERM.

    One platform per state directory (ECOSHARE_STATE_DIR): a second `up` there refuses.
    """
    from ecoshare.adapters.brokers import broker_choice
    from ecoshare.embedded.platform import Platform

    base = settings()
    updates: dict[str, object] = {}
    if workers is not None:
        updates["workers"] = workers
    if broker is not None:
        updates["broker"] = broker_choice(broker)
    if data_dir is not None:
        updates["data_dir"] = data_dir
    if kafka_nodes is not None:
        updates["kafka_nodes"] = kafka_nodes
    base = base.model_copy(update=updates)
    logging.basicConfig(level=base.log_level, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with console.status("starting the platform…"):
        platform = Platform(base, start_api=api).start()
    try:
        endpoints = platform.endpoints()
        table = Table(title="ecoshare is up", show_header=False)
        for name, value in endpoints.items():
            table.add_row(name, json.dumps(value) if isinstance(value, dict) else str(value))
        print_table(table, console)
        console.print(f"endpoints written to {base.state_dir / 'endpoints.json'}; Ctrl-C stops")
        while not stop.wait(0.5):
            for index, worker in enumerate(platform.workers):
                if not worker.alive():
                    errors.print(f"worker-{index} exited; restarting it (see {worker.log_path})")
                    worker.start(wait=False)
    finally:
        with console.status("stopping…"):
            platform.stop()
    console.print("stopped")


@app.command()
def demo(
    locations: Annotated[int, typer.Option(help="Service points and shops to simulate.")] = 400,
) -> None:
    """Run the PostNL lockdown-day scenario, governed, end to end (about a minute)."""
    from ecoshare.demo.runner import run_demo

    base = settings()
    if base.bootstrap_servers is None:
        # The demo owns its embedded platform; keep its state apart from `ecoshare up`.
        base = base.model_copy(update={"state_dir": base.state_dir / "demo"})
    run_demo(base, locations=locations, console=console)


@app.command()
def init(output: OutputOption = "table") -> None:
    """Create every topic the platform needs (idempotent); run once before the services."""
    check_output(output)
    from ecoshare.application.provisioning import provision_topics
    from ecoshare.catalog.event_catalog import load_catalog
    from ecoshare.config.topics import TopicNames

    base = settings()
    if not base.bootstrap_servers:
        raise ConfigurationError("init needs ECOSHARE_BOOTSTRAP_SERVERS")
    created = provision_topics(
        base.bootstrap_servers,
        TopicNames(base.topic_prefix),
        load_catalog(base.schemas_dir).event_types,
        base.ingress_partitions,
        base.topic_policy,
    )
    if output == "json":
        print_json({"created": created})
        return
    console.print(f"{len(created)} topics created" if created else "every topic exists already")


@app.command()
def worker() -> None:
    """Run one governance worker (needs ECOSHARE_BOOTSTRAP_SERVERS and _SCHEMA_REGISTRY_URL)."""
    from ecoshare.governance.__main__ import main as worker_main

    raise typer.Exit(worker_main())


@app.command()
def registry(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    topic: Annotated[str, typer.Option(help="Compacted topic holding the schemas.")] = "_schemas",
) -> None:
    """Run the Confluent-compatible schema registry against ECOSHARE_BOOTSTRAP_SERVERS."""
    base = settings()
    if not base.bootstrap_servers:
        raise ConfigurationError("the registry needs ECOSHARE_BOOTSTRAP_SERVERS")
    from ecoshare.registry.__main__ import main as registry_main

    raise typer.Exit(
        registry_main(
            [
                "--bootstrap-servers",
                base.bootstrap_servers,
                "--host",
                base.bind_host,
                "--port",
                str(port),
                "--topic",
                topic,
            ]
        )
    )


def registry_url(base: Settings) -> str:
    if base.schema_registry_url:
        return base.schema_registry_url
    from ecoshare.config.endpoints import read_endpoints

    return str(read_endpoints(base.state_dir)["schema_registry_url"])


@schemas_app.command("register")
def schemas_register(output: OutputOption = "table") -> None:
    """Register the catalog (idempotent: unchanged schemas keep their ids)."""
    check_output(output)
    from ecoshare.catalog.event_catalog import load_catalog
    from ecoshare.catalog.registration import register_catalog
    from ecoshare.config.topics import TopicNames

    base = settings()
    registered = register_catalog(
        load_catalog(base.schemas_dir), registry_url(base), TopicNames(base.topic_prefix)
    )
    if output == "json":
        print_json(
            [
                {"subject": entry.subject, "id": entry.schema_id, "record": entry.record}
                for entry in registered
            ]
        )
        return
    table = Table(title="registered schemas")
    for column in ("subject", "id", "record"):
        table.add_column(column)
    for entry in registered:
        table.add_row(entry.subject, str(entry.schema_id), entry.record)
    print_table(table, console)


@schemas_app.command("list")
def schemas_list(output: OutputOption = "table") -> None:
    """The catalog's schemas and their field classifications."""
    check_output(output)
    from ecoshare.catalog.event_catalog import load_catalog

    catalog = load_catalog(settings().schemas_dir)
    rows = [
        {
            "event_type": event_type,
            "version": catalog.version(event_type),
            "fields": len(catalog.classification(event_type)),
            "personal": [
                name
                for name, level in catalog.classification(event_type).items()
                if level.value == "personal"
            ],
        }
        for event_type in catalog.event_types
    ]
    if output == "json":
        print_json(rows)
        return
    table = Table(title=f"event catalog ({catalog.directory})")
    for column in ("event type", "version", "fields", "personal fields"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["event_type"]),
            str(row["version"]),
            str(row["fields"]),
            ", ".join(row["personal"]),  # type: ignore[arg-type]
        )
    print_table(table, console)


@schemas_app.command("show")
def schemas_show(event_type: str) -> None:
    """Print one event type's Avro schema (JSON)."""
    from ecoshare.catalog.event_catalog import CatalogError, load_catalog

    catalog = load_catalog(settings().schemas_dir)
    try:
        schema = catalog.event_schema(event_type)
    except CatalogError as exc:
        raise InputError(str(exc)) from exc
    print_json(schema)


for module in (status, partners, governance, events, catalog, acl):
    module.register(app)


def main() -> None:
    """Console entry: run the app, turning the platform's errors into exit codes."""
    try:
        # Without standalone mode, click returns the code of a `typer.Exit` raised in a
        # command instead of raising it.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        errors.print("aborted")
        sys.exit(130)
    except ConfigurationError as exc:
        errors.print(f"error: {exc}", soft_wrap=True, markup=False, highlight=False)
        sys.exit(2)
    except EcoshareError as exc:
        errors.print(f"error: {exc}", soft_wrap=True, markup=False, highlight=False)
        sys.exit(1)
    except Exception as exc:
        # Usage errors come from the click that typer bundles, not the click package.
        if any(cls.__name__ == "ClickException" for cls in type(exc).__mro__):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise


if __name__ == "__main__":
    main()
