"""Dry-run of a proposed agreement: replay recent ingress events through the reference
decision function, under the agreements in force and under the proposal.

The replay reads the last N events of the proposal's event types straight from the
ingress topics (assign, no group, nothing committed), checks each event's publisher
signature as the workers do, decodes it with the registry and evaluates it twice with
:func:`ecoshare.domain.policy.evaluate_event`. Nothing is produced anywhere.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from ecoshare.adapters.kafka.config import metadata_consumer_config
from ecoshare.adapters.kafka.exceptions import KafkaIoError
from ecoshare.adapters.kafka.reading import header_map, read_to_end, topic_partitions
from ecoshare.api.changes import display_json
from ecoshare.catalog.event_catalog import Catalog, load_catalog
from ecoshare.cli.common import ControlState, Endpoints, InputError, read_input, read_state
from ecoshare.codec.event_json import to_json_value
from ecoshare.codec.framed import FramedDecoder, MessageDecodeError
from ecoshare.config.secrets import signing_secret
from ecoshare.config.settings import Settings
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.identity import PUBLISHER_HEADER
from ecoshare.domain.policy import Decision, evaluate_event
from ecoshare.domain.projection import agreement_schema_problems, subscriber_hash_key
from ecoshare.domain.state import GovernanceState
from ecoshare.domain.timestamps import to_epoch_millis
from ecoshare.errors import EcoshareError
from ecoshare.governance.engine import GovernanceEngine
from ecoshare.terminal.tables import print_table


def load_proposal(path: Path, schemas_dir: Path) -> Agreement:
    """The agreement in ``path``: a bare agreement, or a file with one under ``agreements``."""
    try:
        raw = yaml.safe_load(read_input(path))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML or JSON: {exc}") from exc
    prefix = ""
    if isinstance(raw, dict) and "agreements" in raw:
        items = raw["agreements"]
        if not isinstance(items, list) or len(items) != 1:
            raise InputError(f"{path}: agreements: a dry-run takes exactly one agreement")
        raw, prefix = items[0], "agreements[0]"
    if not isinstance(raw, dict):
        raise InputError(f"{path}: the file must hold one agreement (a mapping)")
    try:
        proposal = Agreement.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"])
            where = ".".join(part for part in (prefix, location) if part) or "(agreement)"
            lines.append(f"{path}: {where}: {error['msg']}")
        raise InputError("\n".join(lines)) from exc
    problems = agreement_schema_problems(proposal, load_catalog(schemas_dir).event_schemas())
    if problems:
        raise InputError("\n".join(f"{path}: {problem}" for problem in problems))
    return proposal


@dataclass(frozen=True)
class IngressMessage:
    event_type: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes
    headers: dict[str, bytes]
    key: bytes | None = None
    topic: str = ""

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True)
class _AsConsumed:
    """An :class:`IngressMessage` shaped as the consumed message the engine admits."""

    message: IngressMessage

    def topic(self) -> str:
        return self.message.topic

    def partition(self) -> int:
        return self.message.partition

    def offset(self) -> int:
        return self.message.offset

    def key(self) -> bytes | None:
        return self.message.key

    def value(self) -> bytes:
        return self.message.value

    def headers(self) -> list[tuple[str, bytes]]:
        return list(self.message.headers.items())

    def timestamp(self) -> tuple[int, int]:
        return (1, self.message.timestamp_ms)


def read_recent_ingress(
    where: Endpoints, event_types: list[str], sample: int, *, timeout_seconds: float = 30.0
) -> list[IngressMessage]:
    """The last ``sample`` messages over the ingress topics of ``event_types``, oldest first.

    Each partition is read from ``sample`` records before its end up to its end, so the
    newest ``sample`` overall are among them; they are ordered by message timestamp.
    """
    consumer = Consumer(metadata_consumer_config(where.bootstrap_servers))
    topics = {where.names.ingress(event_type): event_type for event_type in event_types}
    found: list[IngressMessage] = []
    try:
        starts = []
        partitions = topic_partitions(
            where.bootstrap_servers, list(topics), timeout_seconds=timeout_seconds
        )
        for topic, partition in partitions:
            # ListOffsets may under-report the end on the embedded broker; that only
            # makes the read start earlier, and the newest ``sample`` are kept below.
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_seconds, cached=False
            )
            starts.append((topic, partition, max(int(low), int(high) - sample)))
        for message in read_to_end(
            where.bootstrap_servers, starts, timeout_seconds=timeout_seconds
        ):
            found.append(
                IngressMessage(
                    event_type=topics[str(message.topic())],
                    partition=int(message.partition() or 0),
                    offset=int(message.offset() or 0),
                    timestamp_ms=int(message.timestamp()[1]),
                    value=message.value() or b"",
                    headers=header_map(message.headers()),
                    key=message.key(),
                    topic=str(message.topic()),
                )
            )
    except (KafkaException, KafkaIoError, TimeoutError, RuntimeError) as exc:
        raise EcoshareError(f"could not read the ingress topics to their end: {exc}") from exc
    finally:
        with contextlib.suppress(KafkaException, RuntimeError):
            consumer.close()
    found.sort(key=lambda item: (item.timestamp_ms, item.event_type, item.partition, item.offset))
    return found[-sample:]


@dataclass
class SideSummary:
    """What one side (current agreements, or the proposal) delivers of the sample."""

    delivered: int = 0
    withheld: Counter[str] = field(default_factory=Counter)
    fields: set[str] = field(default_factory=set)
    transformed: dict[str, str] = field(default_factory=dict)
    without_consent: Counter[str] = field(default_factory=Counter)
    agreements: Counter[str] = field(default_factory=Counter)

    def count(self, decision: Decision | None) -> None:
        if decision is None:
            self.withheld["not_a_candidate"] += 1
            return
        if decision.agreement_id is not None:
            self.agreements[f"{decision.agreement_id}@v{decision.agreement_version}"] += 1
        if not decision.delivered:
            self.withheld[decision.reason.value if decision.reason else "unknown"] += 1
            return
        self.delivered += 1
        self.fields.update(decision.fields_delivered)
        self.transformed.update(
            {name: action.value for name, action in decision.fields_transformed.items()}
        )
        self.without_consent.update(decision.personal_fields_without_consent)

    def fields_text(self) -> str:
        return ", ".join(
            f"{name} ({self.transformed[name]})" if name in self.transformed else name
            for name in sorted(self.fields)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "withheld": dict(sorted(self.withheld.items())),
            "fields_delivered": sorted(self.fields),
            "fields_transformed": dict(sorted(self.transformed.items())),
            "personal_fields_without_consent": dict(sorted(self.without_consent.items())),
            "agreements": dict(sorted(self.agreements.items())),
        }


def _decision_json(decision: Decision | None) -> dict[str, Any]:
    if decision is None:
        return {
            "outcome": "withheld",
            "reason": "not_a_candidate",
            "agreement": None,
            "record": None,
        }
    return {
        "outcome": decision.outcome,
        "reason": decision.reason.value if decision.reason else None,
        "agreement": (
            f"{decision.agreement_id}@v{decision.agreement_version}"
            if decision.agreement_id
            else None
        ),
        "record": None if decision.record is None else to_json_value(decision.record),
    }


@dataclass
class ReplayedEvent:
    event_id: str
    event_type: str
    publisher_id: str
    location_id: str
    now: Decision | None
    proposed: Decision | None

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "publisher_id": self.publisher_id,
            "location_id": self.location_id,
            "now": _decision_json(self.now),
            "proposed": _decision_json(self.proposed),
        }


@dataclass
class DryRunReport:
    proposal: Agreement
    current_version: int | None
    events: list[ReplayedEvent] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    now: SideSummary = field(default_factory=SideSummary)
    proposed: SideSummary = field(default_factory=SideSummary)

    def to_json(self) -> dict[str, Any]:
        return {
            "subscriber": self.proposal.subscriber,
            "agreement": display_json(self.proposal),
            "current_version": self.current_version,
            "sampled": len(self.events) + sum(self.skipped.values()),
            "replayed": len(self.events),
            "skipped": dict(sorted(self.skipped.items())),
            "quarantined": sum(self.skipped.values()),
            "now": self.now.to_json(),
            "proposed": self.proposed.to_json(),
            "events": [event.to_json() for event in self.events],
            "delivered_anything": False,
        }

    def print(self, console: Console, show: int) -> None:
        proposal = self.proposal
        current = f"v{self.current_version} in force" if self.current_version else "not applied yet"
        console.print(
            f"dry-run of [bold]{proposal.agreement_id} v{proposal.version}[/] ({current}) for "
            f"subscriber [bold]{proposal.subscriber}[/] over the last "
            f"{len(self.events) + sum(self.skipped.values())} "
            f"ingress events of {', '.join(sorted(proposal.event_types))}"
        )
        table = Table(title="what the subscriber receives")
        table.add_column("")
        table.add_column("now (agreements in force)")
        table.add_column(f"proposed ({proposal.agreement_id} v{proposal.version})")
        table.add_row("delivered", str(self.now.delivered), str(self.proposed.delivered))
        table.add_row(
            "withheld",
            _reasons(self.now.withheld),
            _reasons(self.proposed.withheld),
        )
        # Quarantined events reach no subscriber under any agreement: one count for both.
        table.add_row("quarantined", _reasons(self.skipped), _reasons(self.skipped))
        table.add_row("fields", self.now.fields_text() or "-", self.proposed.fields_text() or "-")
        table.add_row(
            "personal fields nulled (no consent)",
            _reasons(self.now.without_consent),
            _reasons(self.proposed.without_consent),
        )
        print_table(table, console)
        if show and self.events:
            detail = Table(title=f"the {min(show, len(self.events))} most recent events")
            for column in ("event", "location", "now", "proposed", "fields that differ"):
                detail.add_column(column)
            for event in self.events[-show:]:
                detail.add_row(
                    event.event_id,
                    event.location_id,
                    _outcome(event.now),
                    _outcome(event.proposed),
                    _record_difference(event.now, event.proposed),
                )
            print_table(detail, console)
        console.print("nothing was delivered: this was a dry-run")


def _reasons(counts: Counter[str]) -> str:
    if not counts:
        return "0"
    total = sum(counts.values())
    return f"{total} (" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")"


def _outcome(decision: Decision | None) -> str:
    if decision is None:
        return "withheld: not a candidate"
    if decision.delivered:
        return f"delivered ({len(decision.fields_delivered)} fields)"
    return f"withheld: {decision.reason.value if decision.reason else '?'}"


def _record_difference(now: Decision | None, proposed: Decision | None) -> str:
    before = (now.record if now is not None else None) or {}
    after = (proposed.record if proposed is not None else None) or {}
    parts = [f"+{name}" for name in after if name not in before]
    parts += [f"-{name}" for name in before if name not in after]
    parts += [f"~{name}" for name in after if name in before and after[name] != before[name]]
    return " ".join(parts) or "-"


@dataclass(frozen=True)
class _EvaluationContext:
    subscriber: str
    catalog: Catalog
    now: datetime
    hash_keys: dict[str, bytes]


def _decide(
    record: dict[str, Any],
    event_type: str,
    publisher_id: str,
    governance: GovernanceState,
    context: _EvaluationContext,
) -> Decision | None:
    decisions = evaluate_event(
        record,
        event_type,
        publisher_id,
        governance,
        context.catalog.classification(event_type),
        context.now,
        context.hash_keys,
    )
    return next((d for d in decisions if d.subscriber_id == context.subscriber), None)


@dataclass(frozen=True)
class EngineDecisions:
    """What the workers' audit trail already says of sampled ingress positions
    ((ingress topic, partition, offset)): quarantined (why), or admitted (event id)."""

    quarantined: dict[tuple[str, int, int], str] = field(default_factory=dict)
    admitted: dict[tuple[str, int, int], str] = field(default_factory=dict)


def _decided_by_the_engine(where: Endpoints, messages: list[IngressMessage]) -> EngineDecisions:
    """The workers' decisions on the sampled messages, from their audit trail; empty
    for those not audited yet."""
    from ecoshare.api.audit_index import scan_audit
    from ecoshare.codec.audit_blocks import QuarantineRecord

    decided = EngineDecisions()
    if not messages:
        return decided
    wanted = {message.position for message in messages}
    try:
        for record in scan_audit(where.bootstrap_servers, where.names.audit):
            topic, _, partition = record.source.rpartition(":")
            position = (topic, int(partition or 0), record.offset)
            if position not in wanted:
                continue
            if isinstance(record, QuarantineRecord):
                decided.quarantined[position] = record.reason
            else:
                decided.admitted[position] = record.event_id
    except EcoshareError:
        return decided
    return decided


def admission_verdicts(
    messages: list[IngressMessage],
    engine: GovernanceEngine,
    state: GovernanceState,
    decided: EngineDecisions,
    now_ms: int,
) -> dict[tuple[str, int, int], str | None]:
    """Position -> quarantine reason (None: admitted) of each message, as the workers
    decide: their recorded decision where there is one, else the engine's own admission.

    Messages go through partition by partition in offset order, as the workers read
    them, so each partition's duplicate window sees what the worker's saw: the same
    event id on two partitions (two locations) is two events, on one it is a duplicate.
    """
    verdicts: dict[tuple[str, int, int], str | None] = {}
    for message in sorted(messages, key=lambda item: item.position):
        position = message.position
        if position in decided.quarantined:
            verdicts[position] = decided.quarantined[position]
        elif position in decided.admitted:
            engine.window(message.topic, message.partition).add(decided.admitted[position], now_ms)
            verdicts[position] = None
        else:
            refusal = engine.admission_refusal(_AsConsumed(message), state, now_ms)
            verdicts[position] = None if refusal is None else refusal[0].value
    return verdicts


def _admission_engine(
    where: Endpoints, base: Settings, catalog: Catalog, event_types: list[str], secret: bytes
) -> GovernanceEngine:
    """A governance engine configured as the workers', used for admission only."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from ecoshare.governance.schemas import RegistrySchemaLookup

    ingress = {where.names.ingress(event_type): event_type for event_type in event_types}
    partition_counts = _partition_counts(where, list(ingress))

    def no_delivery_schema(topic: str, schema: dict[str, Any]) -> int:
        raise EcoshareError("a dry-run registers no delivery schema")

    return GovernanceEngine(
        schemas=RegistrySchemaLookup(
            SchemaRegistryClient({"url": where.schema_registry_url}), ingress
        ),
        classification={
            event_type: catalog.classification(event_type) for event_type in event_types
        },
        master_secret=secret,
        delivery_topic=where.names.delivery,
        audit_topic=where.names.audit,
        quarantine_topic=where.names.quarantine,
        register_delivery_schema=no_delivery_schema,
        max_event_bytes=base.max_event_bytes,
        dedup_window_ms=base.dedup_window_seconds * 1000,
        dedup_capacity=base.dedup_capacity,
        ingress_partitions=lambda topic: partition_counts.get(topic, base.ingress_partitions),
        engine=base.engine,
    )


def _partition_counts(where: Endpoints, topics: list[str]) -> dict[str, int]:
    """Partitions per topic, as the workers count them (the wrong_partition check)."""
    try:
        partitions = topic_partitions(where.bootstrap_servers, topics, timeout_seconds=30.0)
    except KafkaIoError as exc:
        raise EcoshareError(f"could not read the ingress topics' partitions: {exc}") from exc
    return dict(Counter(topic for topic, _ in partitions))


def replay(where: Endpoints, base: Settings, proposal: Agreement, sample: int) -> DryRunReport:
    """Evaluate the last ``sample`` ingress events under the current state and the proposal."""
    state: ControlState = read_state(where)
    current = GovernanceState(
        state.partners.values(), state.agreements.values(), state.consents.values()
    )
    catalog = load_catalog(base.schemas_dir)
    secret = signing_secret(base)
    event_types = sorted(t for t in proposal.event_types if t in catalog.event_types)
    messages = read_recent_ingress(where, event_types, sample)
    now = datetime.now(UTC)
    verdicts = admission_verdicts(
        messages,
        _admission_engine(where, base, catalog, event_types, secret),
        current,
        _decided_by_the_engine(where, messages),
        to_epoch_millis(now),
    )
    applied = state.agreements.get(proposal.agreement_id)
    subscriber = proposal.subscriber
    context = _EvaluationContext(
        subscriber, catalog, now, {subscriber: subscriber_hash_key(secret, subscriber)}
    )
    return replay_messages(
        DryRunReport(proposal, applied.version if applied else None),
        messages,
        verdicts,
        current,
        context,
        FramedDecoder(where.schema_registry_url).decode,
    )


def replay_messages(
    report: DryRunReport,
    messages: list[IngressMessage],
    verdicts: dict[tuple[str, int, int], str | None],
    current: GovernanceState,
    context: _EvaluationContext,
    decode: Callable[[bytes], dict[str, Any]],
) -> DryRunReport:
    """Count ``messages`` into ``report``: the refused as quarantined, the admitted
    evaluated under ``current`` and under ``current`` with the proposal in force."""
    proposal = report.proposal
    proposed = current.without_agreement(proposal.agreement_id).with_agreement(proposal)
    for message in messages:
        refused = verdicts.get(message.position, "not_admitted")
        if refused is not None:
            report.skipped[refused] += 1
            continue
        try:
            record = decode(message.value)
        except MessageDecodeError:
            report.skipped["undecodable_payload"] += 1
            continue
        publisher_id = message.headers[PUBLISHER_HEADER].decode(errors="replace")
        replayed = ReplayedEvent(
            event_id=str(record.get("event_id", "")),
            event_type=message.event_type,
            publisher_id=publisher_id,
            location_id=str(record.get("location_id", "")),
            now=_decide(record, message.event_type, publisher_id, current, context),
            proposed=_decide(record, message.event_type, publisher_id, proposed, context),
        )
        report.now.count(replayed.now)
        report.proposed.count(replayed.proposed)
        report.events.append(replayed)
    return report
