"""``ecoshare catalog asyncapi``: the AsyncAPI 3.0 document of the ecosystem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecoshare.cli.common import NotFoundError, endpoints, print_json, settings

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
    from ecoshare.cli.common import read_state
    from ecoshare.config.topics import TopicNames

    base = settings()
    catalog = load_catalog(base.schemas_dir)
    bootstrap_servers: str | None = None
    if file is not None:
        from ecoshare.config.governance_file import load_governance_file

        # A bad file raises GovernanceFileError (exit 2) naming the file, path and problem.
        document = load_governance_file(file).document
        partners = {item.partner_id: item for item in document.partners}
        agreements = list(document.agreements)
        names = TopicNames(base.topic_prefix)
    else:
        where = endpoints(base)
        state = read_state(where)
        partners, agreements = state.partners, list(state.agreements.values())
        names, bootstrap_servers = where.names, where.bootstrap_servers
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
