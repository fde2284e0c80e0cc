"""``ecoshare partners`` and ``ecoshare consent``: onboarding, API keys, consent records."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from ecoshare.application.errors import (
    ConsentOfAnotherControllerError,
    InvalidConsentError,
    PartnerExistsError,
    UnknownApiKeyError,
    UnknownConsentError,
    UnknownControllerError,
    UnknownPartnerError,
)
from ecoshare.cli.common import (
    CliPlatformState,
    Endpoints,
    InputError,
    NotFoundError,
    OutputOption,
    check_output,
    console,
    endpoints,
    print_json,
    read_key_records,
    read_state,
    record_writer,
    settings,
)
from ecoshare.errors import EcoshareError
from ecoshare.terminal.tables import print_table

partners_app = typer.Typer(
    help="Partners of the ecosystem and their API keys.", no_args_is_help=True
)
keys_app = typer.Typer(help="Per-partner API keys for the HTTP API.", no_args_is_help=True)
consent_app = typer.Typer(help="Consent of data subjects (ISO/IEC TS 27560).", no_args_is_help=True)
partners_app.add_typer(keys_app, name="key")


def register(app: typer.Typer) -> None:
    app.add_typer(partners_app, name="partners")
    app.add_typer(consent_app, name="consent")


def _problems(exc: InvalidConsentError) -> str:
    return "; ".join(f"{problem.field or 'value'}: {problem.message}" for problem in exc.problems)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors()
    )


def active_key_counts(where: Endpoints) -> dict[str, int]:
    """partner id -> API keys issued to it and not revoked."""
    from ecoshare.application.partners import active_key_counts as count_active

    return count_active(CliPlatformState(where))


def _show_secret(label: str, value: str) -> None:
    console.print(f"[bold]{label}:[/] {value}", soft_wrap=True, highlight=False)


# -- partners ------------------------------------------------------------------------


@partners_app.command("list")
def partners_list(output: OutputOption = "table") -> None:
    """Every partner with its roles, state and number of active API keys."""
    check_output(output)
    where = endpoints(settings())
    state = read_state(where)
    active_keys = active_key_counts(where)
    partners = sorted(state.partners.values(), key=lambda item: item.partner_id)
    if output == "json":
        print_json(
            [
                {
                    **partner.model_dump(mode="json"),
                    "roles": sorted(role.value for role in partner.roles),
                    "active_api_keys": active_keys.get(partner.partner_id, 0),
                }
                for partner in partners
            ]
        )
        return
    table = Table(title=f"partners ({len(partners)})")
    for column in ("partner", "name", "roles", "enabled", "key gen", "API keys", "contact"):
        table.add_column(column)
    for partner in partners:
        table.add_row(
            partner.partner_id,
            escape(partner.name),
            ", ".join(sorted(role.value for role in partner.roles)),
            "yes" if partner.enabled else "[red]no[/]",
            str(partner.key_generation),
            str(active_keys.get(partner.partner_id, 0)),
            escape(partner.contact_email or ""),
        )
    print_table(table, console)


@partners_app.command("add")
def partners_add(
    partner_id: Annotated[str, typer.Argument(help="Lowercase id: letters, digits, hyphens.")],
    name: Annotated[str, typer.Option(help="Display name of the company.")],
    role: Annotated[
        list[str], typer.Option("--role", help="publisher, subscriber or operator (repeatable).")
    ],
    email: Annotated[str | None, typer.Option(help="Contact e-mail address.")] = None,
    output: OutputOption = "table",
) -> None:
    """Onboard a partner; prints its signing key and a new API key ONCE."""
    check_output(output)
    from ecoshare.application.partners import register_partner
    from ecoshare.config.secrets import signing_secret
    from ecoshare.domain.partners import Partner

    try:
        partner = Partner.model_validate(
            {"partner_id": partner_id, "name": name, "roles": role, "contact_email": email}
        )
    except ValidationError as exc:
        raise InputError(f"invalid partner: {_validation_message(exc)}") from exc
    base = settings()
    where = endpoints(base)
    try:
        with record_writer(where) as writer:
            registered = register_partner(
                partner, CliPlatformState(where), writer, signing_secret(base)
            )
    except PartnerExistsError as exc:
        raise EcoshareError(
            f"partner {partner_id!r} exists already; see `ecoshare partners key create`"
        ) from exc
    issued, signing_key = registered.api_key, registered.signing_key
    if output == "json":
        print_json(
            {
                "partner": partner.model_dump(mode="json"),
                "signing_key": signing_key.hex(),
                "api_key": {**issued.record.public_view(), "api_key": issued.api_key},
            }
        )
        return
    console.print(f"partner [bold]{partner_id}[/] added ({', '.join(sorted(role))})")
    _show_secret("signing key (hex, for the Kafka SDK)", signing_key.hex())
    _show_secret(f"API key {issued.key_id}", issued.api_key)
    console.print("[yellow]Both are shown only now: store them safely.[/]")


def _set_enabled(partner_id: str, enabled: bool, output: str) -> None:
    check_output(output)
    from ecoshare.application.partners import set_partner_enabled

    where = endpoints(settings())
    try:
        with record_writer(where) as writer:
            partner = set_partner_enabled(partner_id, enabled, CliPlatformState(where), writer)
    except UnknownPartnerError as exc:
        raise NotFoundError(str(exc)) from exc
    if output == "json":
        print_json(partner.model_dump(mode="json"))
        return
    state = "enabled" if enabled else "disabled"
    console.print(f"partner [bold]{partner_id}[/] {state}; effective from the next event on")


@partners_app.command("disable")
def partners_disable(partner_id: str, output: OutputOption = "table") -> None:
    """Disable a partner: it neither publishes nor receives anything any more."""
    _set_enabled(partner_id, False, output)


@partners_app.command("enable")
def partners_enable(partner_id: str, output: OutputOption = "table") -> None:
    """Enable a disabled partner again."""
    _set_enabled(partner_id, True, output)


@keys_app.command("create")
def key_create(
    partner_id: str,
    label: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    output: OutputOption = "table",
) -> None:
    """Issue a new API key for a partner (shown once)."""
    check_output(output)
    from ecoshare.application.partners import issue_partner_key

    where = endpoints(settings())
    try:
        with record_writer(where) as writer:
            issued = issue_partner_key(partner_id, label, CliPlatformState(where), writer)
    except UnknownPartnerError as exc:
        raise NotFoundError(str(exc)) from exc
    if output == "json":
        print_json({**issued.record.public_view(), "api_key": issued.api_key})
        return
    _show_secret(f"API key {issued.key_id} for {partner_id}", issued.api_key)
    console.print("[yellow]Shown only now: store it safely.[/]")


@keys_app.command("revoke")
def key_revoke(key_id: str, output: OutputOption = "table") -> None:
    """Revoke an API key at once, on every API instance."""
    check_output(output)
    from ecoshare.application.partners import revoke_api_key

    where = endpoints(settings())
    try:
        with record_writer(where) as writer:
            record = revoke_api_key(key_id, CliPlatformState(where), writer)
    except UnknownApiKeyError as exc:
        raise NotFoundError(f"no API key {key_id!r}; see `ecoshare partners key list`") from exc
    if output == "json":
        print_json(record.public_view())
        return
    console.print(f"API key {key_id} of {record.partner_id} revoked")


@keys_app.command("list")
def key_list(
    partner_id: Annotated[str | None, typer.Argument(help="Only this partner's keys.")] = None,
    output: OutputOption = "table",
) -> None:
    """API keys (ids and state only: the keys themselves are never stored)."""
    check_output(output)
    where = endpoints(settings())
    records = sorted(read_key_records(where).values(), key=lambda item: item.created_at)
    rows = [
        record.public_view()
        for record in records
        if partner_id is None or record.partner_id == partner_id
    ]
    if output == "json":
        print_json(rows)
        return
    table = Table(title="API keys")
    for column in ("key id", "partner", "created", "revoked", "label"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["key_id"]),
            str(row["partner_id"]),
            str(row["created_at"]),
            str(row["revoked_at"] or ""),
            str(row["label"] or ""),
        )
    print_table(table, console)


# -- consent -------------------------------------------------------------------------


def _timestamp(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from ecoshare.codec.event_json import parse_timestamp

    try:
        return parse_timestamp(value if not value.lstrip("-").isdigit() else int(value))
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from exc


@consent_app.command("grant")
def consent_grant(
    subject: Annotated[str, typer.Option(help="The data subject's id (as in events).")],
    controller: Annotated[str, typer.Option(help="The publishing partner holding the data.")],
    grantee: Annotated[str, typer.Option(help="The subscriber allowed, or '*' for any.")],
    purpose: Annotated[str, typer.Option(help="The purpose consented to.")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="Field names or 'personal' (repeatable).")
    ],
    expires_at: Annotated[str | None, typer.Option(help="ISO 8601 end of the consent.")] = None,
    consent_id: Annotated[str | None, typer.Option("--id", help="Default: a new UUID.")] = None,
    output: OutputOption = "table",
) -> None:
    """Record a data subject's consent; effective from the next event on."""
    check_output(output)
    from ecoshare.application.consent import NewConsent, consent_record, grant_consent

    grant = NewConsent(
        subject=subject,
        controller=controller,
        grantee=grantee,
        purpose=purpose,
        scope=scope,
        expires_at=_timestamp(expires_at, "--expires-at"),
        consent_id=consent_id or str(uuid.uuid4()),
    )
    try:
        # Bad input is refused before looking for the platform.
        grant = replace(grant, given_at=consent_record(grant).given_at)
        where = endpoints(settings())
        with record_writer(where) as writer:
            consent = grant_consent(grant, CliPlatformState(where), writer)
    except InvalidConsentError as exc:
        raise InputError(f"invalid consent: {_problems(exc)}") from exc
    except UnknownControllerError as exc:
        raise InputError(f"--controller: {controller!r} is not a partner") from exc
    except ConsentOfAnotherControllerError as exc:
        raise InputError(f"--id: consent {exc.consent_id!r} belongs to another controller") from exc
    if output == "json":
        print_json(consent.model_dump(mode="json"))
        return
    console.print(
        f"consent [bold]{consent.consent_id}[/] granted: {subject} lets {controller} share "
        f"{', '.join(sorted(scope))} with {grantee} for {purpose}"
    )


@consent_app.command("revoke")
def consent_revoke(consent_id: str, output: OutputOption = "table") -> None:
    """Withdraw a consent; enforced for every following event."""
    check_output(output)
    from ecoshare.application.consent import withdraw_consent

    where = endpoints(settings())
    try:
        with record_writer(where) as writer:
            consent = withdraw_consent(consent_id, CliPlatformState(where), writer)
    except UnknownConsentError as exc:
        raise NotFoundError(f"no consent {consent_id!r}; see `ecoshare consent list`") from exc
    if output == "json":
        print_json(consent.model_dump(mode="json"))
        return
    console.print(f"consent [bold]{consent_id}[/] withdrawn at {consent.withdrawn_at}")


@consent_app.command("list")
def consent_list(
    subject: Annotated[str | None, typer.Option(help="Only this data subject.")] = None,
    controller: Annotated[str | None, typer.Option(help="Only this controller.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only consents in force.")] = False,
    output: OutputOption = "table",
) -> None:
    """Consent records, with their state now."""
    check_output(output)
    where = endpoints(settings())
    now = datetime.now(UTC)
    consents = [
        consent
        for consent in sorted(read_state(where).consents.values(), key=lambda c: c.consent_id)
        if (subject is None or consent.subject == subject)
        and (controller is None or consent.controller == controller)
        and (not active or consent.is_active(now))
    ]
    if output == "json":
        print_json([{**c.model_dump(mode="json"), "active": c.is_active(now)} for c in consents])
        return
    table = Table(title=f"consents ({len(consents)})")
    for column in ("consent", "subject", "controller", "grantee", "purpose", "scope", "state"):
        table.add_column(column)
    for consent in consents:
        state = (
            "active"
            if consent.is_active(now)
            else ("withdrawn" if consent.withdrawn_at else "not in force")
        )
        table.add_row(
            consent.consent_id,
            consent.subject,
            consent.controller,
            consent.grantee,
            consent.purpose,
            ", ".join(sorted(consent.scope)),
            state,
        )
    print_table(table, console)
