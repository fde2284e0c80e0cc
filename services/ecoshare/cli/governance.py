"""``ecoshare plan``, ``apply``, ``agreements`` and ``dry-run``: governance as code."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from ecoshare.application.errors import PlanHasProblemsError
from ecoshare.cli.common import (
    CliPlatformState,
    InputError,
    NotFoundError,
    OutputOption,
    check_output,
    console,
    endpoints,
    errors,
    print_json,
    read_state,
    record_writer,
    settings,
)
from ecoshare.governance.control_plane import ensure_control_topics
from ecoshare.terminal.tables import print_table

if TYPE_CHECKING:
    from ecoshare.application.governance_plan import Change, GovernancePlan

agreements_app = typer.Typer(help="Data-sharing agreements in force.", no_args_is_help=True)
FileOption = Annotated[
    Path, typer.Option("--file", "-f", help="The governance file (YAML).", show_default=False)
]


def register(app: typer.Typer) -> None:
    app.add_typer(agreements_app, name="agreements")
    app.command("plan")(plan)
    app.command("apply")(apply)
    app.command("dry-run")(dry_run)


# -- plan / apply ----------------------------------------------------------------------


def _plan(path: Path, state: CliPlatformState) -> GovernancePlan:
    """The plan of the file at ``path``; InputError when it must not be applied."""
    from ecoshare.application.governance import plan_governance, refuse_problems
    from ecoshare.catalog.event_catalog import load_catalog
    from ecoshare.config.governance_file import load_governance_file

    document = load_governance_file(path).document
    for problem in state.control.invalid:
        errors.print(f"warning: invalid applied record ignored: {problem}")
    changes = plan_governance(
        list(document.partners),
        list(document.agreements),
        state,
        load_catalog(settings().schemas_dir).event_schemas(),
        source=str(path),
    )
    try:
        refuse_problems(changes)
    except PlanHasProblemsError as exc:
        raise InputError(str(exc)) from exc
    return changes


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(", ", ": "))
        return text if len(text) <= 90 else text[:87] + "..."
    return repr(value) if isinstance(value, str) else str(value)


def _field_line(path: str, before: Any, after: Any) -> str:
    if isinstance(before, list) and isinstance(after, list):
        removed = [item for item in before if item not in after]
        added = [item for item in after if item not in before]
        if all(not isinstance(item, dict | list) for item in [*removed, *added]):
            parts = []
            if added:
                parts.append(f"[green]+{escape(_short(added))}[/]")
            if removed:
                parts.append(f"[red]-{escape(_short(removed))}[/]")
            if parts:
                return f"      {escape(path)}: {' '.join(parts)}"
    if before is None:
        return f"      [green]+ {escape(path)}: {escape(_short(after))}[/]"
    if after is None:
        return f"      [red]- {escape(path)}: {escape(_short(before))}[/]"
    return f"      [yellow]~ {escape(path)}:[/] {escape(_short(before))} → {escape(_short(after))}"


def _describe(change: Change) -> str:
    from ecoshare.domain.agreements import Agreement
    from ecoshare.domain.partners import Partner

    subject = change.after or change.before
    sign, colour = {"add": ("+", "green"), "change": ("~", "yellow"), "remove": ("-", "red")}[
        change.action
    ]
    if isinstance(subject, Partner):
        roles = ", ".join(sorted(role.value for role in subject.roles))
        detail = escape(f"{subject.name!r} roles [{roles}]")
        if not subject.enabled:
            detail += " (disabled)"
        return f"[{colour}]{sign} partner {escape(change.key)}[/]  {detail}"
    assert isinstance(subject, Agreement)
    versions = change.version_change
    version = f"v{versions[0]} → v{versions[1]}" if versions else f"v{subject.version}"
    publishers = ", ".join(sorted(subject.publishers))
    event_types = ", ".join(sorted(subject.event_types))
    return f"[{colour}]{sign} agreement {escape(change.key)} {version}[/]  " + escape(
        f"{publishers} → {subject.subscriber}: {event_types}"
    )


def _print_plan(plan: GovernancePlan, keys: dict[str, int] | None = None) -> None:
    if plan.empty:
        console.print("no changes: the platform matches the file")
        return
    for change in plan.changes:
        line = _describe(change)
        if change.action == "remove" and (keys or {}).get(change.key):
            line += f"  [red]({(keys or {})[change.key]} active API key(s) stop working)[/]"
        console.print(line, highlight=False, soft_wrap=True)
        for field in change.fields:
            console.print(
                _field_line(field.path, field.before, field.after), highlight=False, soft_wrap=True
            )
    console.print(
        f"\nplan: [green]{plan.count('add')} to add[/], [yellow]{plan.count('change')} to "
        f"change[/], [red]{plan.count('remove')} to remove[/]"
    )


def plan(file: FileOption, output: OutputOption = "table") -> None:
    """Show what applying a governance file would change (nothing is written)."""
    check_output(output)
    from ecoshare.application.governance import keys_lost_by_removal

    state = CliPlatformState(endpoints(settings()))
    changes = _plan(file, state)
    if output == "json":
        print_json(changes.to_json())
        return
    _print_plan(changes, keys_lost_by_removal(changes, state))
    if changes.count("remove"):
        console.print("removals are applied only with `apply --prune`")


def apply(
    file: FileOption,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Also remove partners and agreements the file does not declare (a removed "
            "partner's API keys stop working). Without it they are kept.",
        ),
    ] = False,
    output: OutputOption = "table",
) -> None:
    """Apply a governance file: adds and changes what it declares.

    Idempotent: applying the same file again changes nothing. Agreements whose
    content changed must carry a higher version. What is applied but not in the file
    is removed only with --prune (or when confirmed at a terminal); otherwise it is
    kept and listed.
    """
    check_output(output)
    from ecoshare.application.governance import (
        apply_governance,
        keys_lost_by_removal,
        removals,
    )

    base = settings()
    where = endpoints(base)
    # On a fresh cluster with topic auto-creation off, the control topics may not exist.
    ensure_control_topics(where.bootstrap_servers, where.names, policy=base.topic_policy)
    state = CliPlatformState(where)
    changes = _plan(file, state)
    removed = removals(changes)
    keys = keys_lost_by_removal(changes, state)
    asked = bool(removed) and not prune and output == "table" and sys.stdin.isatty()
    if asked:
        _print_plan(changes, keys)
        prune = typer.confirm(f"remove the {len(removed)} not declared in {file}?")
    with record_writer(where) as writer:
        applied = apply_governance(changes, writer, prune=prune)
    kept = applied.kept
    if output == "json":
        print_json(
            {
                **changes.to_json(),
                "applied": bool(applied.written),
                "kept": [{"kind": c.kind, "id": c.key} for c in kept],
                "api_keys_of_removed_partners": {} if kept else keys,
            }
        )
        return
    if changes.empty:
        console.print("no changes: the platform matches the file")
        return
    if not asked:
        _print_plan(changes, keys)
    if applied.written:
        console.print("[bold green]applied[/]; in force from the next governed event on")
    if kept:
        console.print(
            f"[yellow]kept {len(kept)} not declared in the file[/] "
            f"({', '.join(f'{c.kind} {c.key}' for c in kept)}): "
            "`apply --prune` removes them",
            soft_wrap=True,
        )


# -- agreements ------------------------------------------------------------------------


@agreements_app.command("list")
def agreements_list(
    subscriber: Annotated[str | None, typer.Option(help="Only this subscriber's.")] = None,
    publisher: Annotated[str | None, typer.Option(help="Only those naming this publisher.")] = None,
    output: OutputOption = "table",
) -> None:
    """Agreements as the platform holds them now."""
    check_output(output)
    from ecoshare.application.governance_plan import display_json

    where = endpoints(settings())
    now = datetime.now(UTC)
    agreements = [
        agreement
        for agreement in sorted(read_state(where).agreements.values(), key=lambda a: a.agreement_id)
        if (subscriber is None or agreement.subscriber == subscriber)
        and (publisher is None or agreement.names_publisher(publisher))
    ]
    if output == "json":
        print_json(
            [{**display_json(item), "in_force": item.is_in_force(now)} for item in agreements]
        )
        return
    table = Table(title=f"agreements ({len(agreements)})")
    for column in (
        "agreement",
        "version",
        "publishers",
        "subscriber",
        "event types",
        "purpose",
        "fields",
        "in force",
    ):
        table.add_column(column)
    for agreement in agreements:
        table.add_row(
            agreement.agreement_id,
            str(agreement.version),
            ", ".join(sorted(agreement.publishers)),
            agreement.subscriber,
            ", ".join(sorted(agreement.event_types)),
            agreement.purpose,
            str(len(agreement.granted_fields)),
            "yes" if agreement.is_in_force(now) else "[red]no[/]",
        )
    print_table(table, console)


@agreements_app.command("show")
def agreements_show(agreement_id: str, output: OutputOption = "table") -> None:
    """One agreement in full (YAML, as in a governance file; or JSON)."""
    check_output(output)
    from ecoshare.application.governance_plan import display_json

    where = endpoints(settings())
    agreement = read_state(where).agreements.get(agreement_id)
    if agreement is None:
        raise NotFoundError(f"no agreement {agreement_id!r}; see `ecoshare agreements list`")
    document = display_json(agreement)
    if output == "json":
        print_json(document)
        return
    console.print(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), highlight=False)


# -- dry-run ---------------------------------------------------------------------------


def dry_run(
    agreement: Annotated[
        Path,
        typer.Option(
            "--agreement",
            "-a",
            help="YAML or JSON file of the proposed agreement.",
            show_default=False,
        ),
    ],
    sample: Annotated[
        int, typer.Option(help="Replay the last N ingress events.", min=1, max=100_000)
    ] = 100,
    show: Annotated[int, typer.Option(help="Events to show one by one.", min=0)] = 5,
    output: OutputOption = "table",
) -> None:
    """What the subscriber receives now and would receive under a proposed agreement.

    Replays the last N ingress events through the current agreements and through the
    proposal, side by side. Nothing is delivered and nothing is written.
    """
    check_output(output)
    from ecoshare.cli.dry_run import load_proposal, replay

    base = settings()
    proposal = load_proposal(agreement, base.schemas_dir)
    where = endpoints(base)
    with console.status(f"replaying the last {sample} ingress events…"):
        report = replay(where, base, proposal, sample)
    if output == "json":
        print_json(report.to_json())
        return
    report.print(console, show)
