"""``ecoshare catalog asyncapi``: the AsyncAPI 3.0 document of the ecosystem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecoshare.cli.common import NotFoundError, governance_source, print_json, settings

catalog_app = typer.Typer(
    help="The event catalog as partners see it (AsyncAPI).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@catalog_app.command("asyncapi")
def asyncapi(
    partner: Annotated[
        str | None, typer.Option(help="Only this partner's view (what it publishes, receives).")
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
) -> None:
    """Print the AsyncAPI 3.0 document (JSON): ingress channels per event type, and per
    subscriber its delivery channels with the projected Avro schema it receives."""
    from ecoshare import __version__
    from ecoshare.catalog.asyncapi import asyncapi_document
    from ecoshare.catalog.event_catalog import load_catalog

    base = settings()
    catalog = load_catalog(base.schemas_dir)
    source = governance_source(base, file)
    partners, agreements, names = source.partners, source.agreements, source.names
    bootstrap_servers = source.where.bootstrap_servers if source.where is not None else None
    view = None
    if partner is not None:
        view = partners.get(partner)
        if view is None:
            raise NotFoundError(f"--partner: no partner {partner!r}")
    print_json(
        asyncapi_document(
            catalog,
            agreements,
            names,
            version=__version__,
            bootstrap_servers=bootstrap_servers,
            partner=view,
        )
    )
