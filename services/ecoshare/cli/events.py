"""``ecoshare publish``, ``tail`` and ``audit``: events in, deliveries out, decisions."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ecoshare.application.errors import PublisherNotAllowedError, UnknownEventTypeError
from ecoshare.cli.common import (
    CliPlatformState,
    Endpoints,
    InputError,
    NotFoundError,
    OutputOption,
    check_output,
    console,
    endpoints,
    json_line,
    print_json,
    read_input,
    settings,
)
from ecoshare.terminal.tables import print_table

MAX_PROBLEMS_SHOWN = 20


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
    app.command("tail")(tail)
    app.command("audit")(audit)


def _event_type(name: str, schemas_dir: Path) -> None:
    from ecoshare.application.publish import check_event_type
    from ecoshare.catalog.event_catalog import load_catalog

    try:
        check_event_type(name, load_catalog(schemas_dir).event_types)
    except UnknownEventTypeError as exc:
        raise InputError(str(exc)) from exc


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    events: list[tuple[int, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(read_input(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append((number, json.loads(line)))
        except ValueError as exc:
            problems.append(f"{path}:{number}: not JSON: {exc}")
    if problems:
        raise InputError("\n".join(problems[:MAX_PROBLEMS_SHOWN]))
    if not events:
        raise InputError(f"{path}: no events (one JSON object per line)")
    return events


def publish(
    event_type: Annotated[str, typer.Argument(help="StoreStatusChanged, LocationAvailability...")],
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", help="JSON lines, one event each; '-' reads stdin.", show_default=False
        ),
    ],
    as_partner: Annotated[
        str, typer.Option("--as", help="The publishing partner.", show_default=False)
    ],
    signing_key: Annotated[
        str | None,
        typer.Option(
            help="The partner's signing key (hex). Default: derived from the platform secret, "
            "which the operator of an embedded platform holds.",
            envvar="ECOSHARE_PARTNER_SIGNING_KEY",
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            help="Wait up to this many seconds for the workers' decisions and report them "
            "(exit 2 if any event was quarantined). 0 only sends.",
            min=0,
        ),
    ] = 0,
    output: OutputOption = "table",
) -> None:
    """Publish JSON events as a partner: all are validated first, none sent if one is bad.

    One JSON object per line, with the fields of the event type's schema (`ecoshare
    schemas show TYPE`); see examples/events/. Timestamps may be ISO 8601 with a time
    zone or epoch milliseconds; event_id, publisher_id and published_at are filled in
    when left out. The workers govern what was sent asynchronously: `--wait` reports
    what became of each event (delivered, withheld, quarantined as a duplicate...).
    """
    check_output(output)
    from ecoshare.application.publish import (
        InvalidEventsError,
        publish_json_events,
        publishing_partner,
    )
    from ecoshare.catalog.event_catalog import load_catalog
    from ecoshare.config.secrets import signing_secret
    from ecoshare.domain.identity import partner_signing_key
    from ecoshare.sdk import Publisher

    base = settings()
    _event_type(event_type, base.schemas_dir)
    events = _json_lines(file)
    where = endpoints(base)
    try:
        partner = publishing_partner(as_partner, CliPlatformState(where))
    except PublisherNotAllowedError as exc:
        if not exc.known:
            raise InputError(f"--as: {as_partner!r} is not a partner") from exc
        raise InputError(
            f"--as: partner {as_partner!r} is disabled or holds no publisher role"
        ) from exc
    if signing_key is not None:
        try:
            key = bytes.fromhex(signing_key)
        except ValueError as exc:
            raise InputError("--signing-key: not hexadecimal") from exc
    else:
        key = partner_signing_key(signing_secret(base), as_partner, partner.key_generation)
    publisher = Publisher(
        bootstrap_servers=where.bootstrap_servers,
        schema_registry_url=where.schema_registry_url,
        partner_id=as_partner,
        signing_key=key,
        schemas_dir=base.schemas_dir,
        topic_prefix=where.names.prefix,
        max_event_bytes=base.max_event_bytes,
    )
    # Where each event was written: its decisions name that position, so a decision
    # on an earlier copy of the same event id is never taken for this send's.
    written: dict[str, set[str]] = {}
    try:
        event_ids = publish_json_events(
            publisher,
            load_catalog(base.schemas_dir).event_schema(event_type),
            event_type,
            [(f"line {number}", event) for number, event in events],
            on_written=lambda event_id: _recorder(written.setdefault(event_id, set())),
        )
    except InvalidEventsError as exc:
        shown = [
            f"{file}:{problem.field.replace('line ', '', 1).replace('.', ': ', 1)}: "
            f"{problem.message}"
            for problem in exc.problems[:MAX_PROBLEMS_SHOWN]
        ]
        more = len(exc.problems) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more")
        raise InputError("nothing was published:\n" + "\n".join(shown)) from exc
    outcomes = _await_outcomes(where, event_ids, written, wait) if wait else None
    summary = None if outcomes is None else Counter(outcomes.values())
    if output == "json":
        print_json(
            {
                "sent": len(event_ids),
                "event_type": event_type,
                "publisher": as_partner,
                "event_ids": event_ids,
                "outcomes": outcomes,
                "summary": None if summary is None else dict(sorted(summary.items())),
            }
        )
    else:
        console.print(
            f"sent {len(event_ids)} {event_type} event(s) as {as_partner} to "
            f"{where.names.ingress(event_type)}",
            soft_wrap=True,
        )
        if summary is None:
            console.print(
                "the workers govern them asynchronously: `ecoshare audit EVENT_ID` shows "
                "what became of one, `--wait 30` waits and reports all",
                soft_wrap=True,
            )
        else:
            for outcome, count in sorted(summary.items()):
                console.print(f"  {count} {outcome}", soft_wrap=True, highlight=False)
    if summary is not None and any(key.startswith("quarantined") for key in summary):
        raise typer.Exit(2)


def _recorder(sources: set[str]) -> Callable[[str, int, int], None]:
    """A delivery callback adding the written position to ``sources``, in the form
    decisions name their source: "topic:partition@offset"."""

    def record(topic: str, partition: int, offset: int) -> None:
        sources.add(f"{topic}:{partition}@{offset}")

    return record


def _outcome_of(decisions: list[dict[str, Any]], sources: set[str]) -> str | None:
    """One line for what became of the copies of an event written at ``sources``
    ("topic:partition@offset"): quarantine first, then any delivery; None until each
    copy has a decision. Decisions on copies sent before are not this send's."""
    decisions = [item for item in decisions if item.get("source") in sources]
    if not sources or {item["source"] for item in decisions} != sources:
        return None
    for item in decisions:
        if item["outcome"] == "quarantined":
            return f"quarantined ({item.get('reason')})"
    delivered = sorted(
        item["subscriber_id"] for item in decisions if item["outcome"] == "delivered"
    )
    if delivered:
        return f"delivered to {', '.join(delivered)}"
    return "withheld from every subscriber"


def _await_outcomes(
    where: Endpoints, event_ids: list[str], written: dict[str, set[str]], wait: float
) -> dict[str, str]:
    """event id -> outcome line of the copies written at ``written[event_id]``, polling
    the audit trail until all are decided or ``wait`` seconds have passed (then: "no
    decision yet")."""
    deadline = time.monotonic() + wait
    outcomes: dict[str, str] = {}
    with console.status("waiting for the workers' decisions…"):
        while True:
            pending = {event_id for event_id in event_ids if event_id not in outcomes}
            for event_id, decisions in decisions_on(where, pending).items():
                outcome = _outcome_of(decisions, written.get(event_id, set()))
                if outcome is not None:
                    outcomes[event_id] = outcome
            if len(outcomes) == len(set(event_ids)) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return {event_id: outcomes.get(event_id, "no decision yet") for event_id in event_ids}


def tail(
    subscriber: Annotated[str, typer.Argument(help="The subscribing partner.")],
    event_type: Annotated[str, typer.Argument(help="The event type.")],
    max_events: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after N deliveries.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a delivery.")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="Start at the oldest delivery (else only new ones).")
    ] = True,
) -> None:
    """Print a subscriber's governed deliveries as JSON lines (Ctrl-C stops).

    Reads the delivery topic directly (no consumer group, nothing committed), so it
    never takes deliveries away from the subscriber's own consumers.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    from ecoshare.adapters.kafka.delivery_reader import DeliveryReader
    from ecoshare.codec.framed import FramedDecoder
    from ecoshare.domain.partners import PARTNER_ID_PATTERN

    if re.match(PARTNER_ID_PATTERN, subscriber) is None:
        raise InputError(f"{subscriber!r} is not a partner id")
    base = settings()
    _event_type(event_type, base.schemas_dir)
    where = endpoints(base)
    reader = DeliveryReader(
        where.bootstrap_servers,
        FramedDecoder(where.schema_registry_url),
        where.names.delivery(subscriber, event_type),
    )
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    seen = 0
    last = time.monotonic()
    try:
        while not reader.assign({}, start):
            if timeout is not None and time.monotonic() - last > timeout:
                return
            time.sleep(0.5)
        while max_events is None or seen < max_events:
            wanted = 100 if max_events is None else min(100, max_events - seen)
            batch = reader.read(wanted)
            if not batch:
                if timeout is not None and time.monotonic() - last > timeout:
                    break
                continue
            last = time.monotonic()
            for _, _, delivery in batch:
                sys.stdout.write(json_line(delivery) + "\n")
                seen += 1
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


def quarantined_messages(where: Endpoints, event_ids: set[str]) -> list[dict[str, Any]]:
    """Quarantine records of ``event_ids`` read from the quarantine topic itself.

    The audit trail names a quarantined event only when its id could be read during
    admission; an oversize event is refused before it is scanned, so its id is found
    here, by decoding the kept payload.
    """
    from ecoshare.adapters.kafka.errors import KafkaIoError
    from ecoshare.adapters.kafka.reading import header_map, read_to_end, topic_partitions
    from ecoshare.codec.framed import FramedDecoder, MessageDecodeError

    topic = where.names.quarantine
    try:
        partitions = topic_partitions(where.bootstrap_servers, [topic], timeout_seconds=30.0)
    except KafkaIoError:
        return []
    decoder = FramedDecoder(where.schema_registry_url)
    needles = {event_id: event_id.encode() for event_id in event_ids}
    found: list[dict[str, Any]] = []
    for message in read_to_end(where.bootstrap_servers, [(t, p, 0) for t, p in partitions]):
        value = message.value() or b""
        candidates = [event_id for event_id, raw in needles.items() if raw in value]
        if not candidates:
            continue
        try:
            record = decoder.decode(value)
        except MessageDecodeError:
            continue
        if record.get("event_id") not in candidates:
            continue
        headers = header_map(message.headers())

        def header(name: str, headers: dict[str, bytes] = headers) -> str:
            return headers.get(name, b"").decode(errors="replace")

        origin = header("ecoshare-original-topic")
        found.append(
            {
                "event_id": record["event_id"],
                "event_type": origin.rsplit(".", 1)[-1],
                "publisher_id": record.get("publisher_id"),
                "outcome": "quarantined",
                "reason": header("ecoshare-reason"),
                "detail": header("ecoshare-detail"),
                "source": f"{origin}:{header('ecoshare-original-partition')}"
                f"@{header('ecoshare-original-offset')}",
                "candidate_subscribers": [],
            }
        )
    return found


def decisions_on(where: Endpoints, event_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Every decision recorded on each of ``event_ids``: the audit trail's, and
    quarantine records the audit trail could not name."""
    from ecoshare.adapters.kafka.audit_reading import scan_audit

    found: dict[str, list[dict[str, Any]]] = {event_id: [] for event_id in event_ids}
    for record in scan_audit(where.bootstrap_servers, where.names.audit):
        if record.event_id in found:
            found[record.event_id].append(record.to_json())
    known_sources = {item["source"] for items in found.values() for item in items}
    for item in quarantined_messages(where, event_ids):
        if item["source"] not in known_sources:
            found[item["event_id"]].append(item)
    return found


def audit(
    event_id: Annotated[str, typer.Argument(help="The event's event_id.")],
    output: OutputOption = "table",
) -> None:
    """Every decision taken on one event: delivered, withheld (why), quarantined (why)."""
    check_output(output)
    where = endpoints(settings())
    with console.status("reading the audit trail and the quarantine…"):
        decisions = decisions_on(where, {event_id}).get(event_id, [])
    if not decisions:
        raise NotFoundError(f"no decision recorded for event {event_id!r} (yet)")
    if output == "json":
        print_json(decisions)
        return
    table = Table(title=f"decisions on event {event_id}")
    for column in (
        "subscriber",
        "outcome",
        "reason",
        "agreement",
        "fields delivered",
        "consents",
        "source",
    ):
        table.add_column(column)
    for item in decisions:
        subscribers = item.get("subscriber_id") or ", ".join(item.get("candidate_subscribers", []))
        agreement = (
            f"{item['agreement_id']} v{item['agreement_version']}"
            if item.get("agreement_id")
            else ""
        )
        transformed = item.get("fields_transformed") or {}
        fields = ", ".join(
            f"{name} ({transformed[name]})" if name in transformed else name
            for name in item.get("fields_delivered", [])
        )
        colour = {"delivered": "green", "withheld": "yellow"}.get(item["outcome"], "red")
        table.add_row(
            subscribers or "-",
            f"[{colour}]{item['outcome']}[/]",
            escape(": ".join(part for part in (item.get("reason"), item.get("detail")) if part)),
            agreement,
            fields,
            ", ".join(item.get("consent_ids", [])),
            str(item.get("source", "")),
        )
    print_table(table, console)
