"""``ecoshare acl``: the Kafka ACLs partners' agreements call for, on Apache Kafka.

The bindings come from :func:`ecoshare.domain.access.partner_acls`; this command only
finds partners, agreements and topic names, and prints. ``deploy/kafka/partner-access.sh``
applies its ``--output args`` lines with ``kafka-acls.sh``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ecoshare.cli.common import (
    InputError,
    NotFoundError,
    console,
    governance_source,
    print_json,
    settings,
)
from ecoshare.terminal.tables import print_table

OUTPUTS = ("table", "json", "args")


def register(app: typer.Typer) -> None:
    app.command("acl")(acl)


def acl(
    partner_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[PARTNER_ID]...", help="Only these partners [default: every partner]."
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="Take partners and agreements from this governance file instead of the "
            "running platform (works without one).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="table (for people), json (for scripts), or args: one line of "
            "kafka-acls.sh arguments per binding",
        ),
    ] = "table",
) -> None:
    """Print the Kafka ACL bindings each partner's role and agreements allow: publishers
    write their ingress topics, subscribers read their delivery topics and groups.
    Disabled partners get none."""
    if output not in OUTPUTS:
        raise InputError(f"--output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    from ecoshare.catalog.event_catalog import load_catalog
    from ecoshare.domain.access import partner_acls

    base = settings()
    source = governance_source(base, file)
    partners, agreements, names = source.partners, source.agreements, source.names
    wanted = partner_ids or list(partners)
    unknown = [partner_id for partner_id in wanted if partner_id not in partners]
    if unknown:
        message = f"no partner {', '.join(repr(partner_id) for partner_id in unknown)}"
        raise InputError(message) if file is not None else NotFoundError(message)
    if "{" in names.prefix or "}" in names.prefix:
        raise InputError(f"topic prefix {names.prefix!r} must not contain braces")
    bindings = partner_acls(
        [partners[partner_id] for partner_id in wanted],
        agreements,
        load_catalog(base.schemas_dir).event_types,
        ingress_topic=names.ingress("{event_type}"),
        delivery_prefix=f"{names.prefix}deliver.{{subscriber}}.",
    )
    if output == "args":
        for binding in bindings:
            typer.echo(" ".join(binding.kafka_acls_arguments()))
        return
    rows = [
        {
            "principal": binding.principal,
            "resource_type": binding.resource_type,
            "resource_name": binding.resource_name,
            "pattern_type": binding.pattern_type,
            "operation": binding.operation,
        }
        for binding in bindings
    ]
    if output == "json":
        print_json(rows)
        return
    table = Table(title="Kafka ACLs")
    for column in ("principal", "resource", "name", "pattern", "operation"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    print_table(table, console)
