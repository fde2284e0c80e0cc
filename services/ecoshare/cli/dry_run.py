"""Dry-run of a proposed agreement: replay recent ingress events through the reference
decision function, under the agreements in force and under the proposal.

The replay reads the last N events of the proposal's event types straight from the
ingress topics (assign, no group, nothing committed), checks each event's publisher
signature as the workers do, decodes it with the registry and evaluates it twice with
:func:`ecoshare.domain.policy.evaluate_event`. Nothing is produced anywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import KafkaException
from pydantic import ValidationError

from ecoshare.adapters.kafka.errors import KafkaIoError
from ecoshare.adapters.kafka.reading import (
    header_map,
    partition_end,
    read_to_end,
    topic_partitions,
)
from ecoshare.catalog.event_catalog import Catalog, load_catalog
from ecoshare.cli.common import ControlState, Endpoints, InputError, read_input, read_state
from ecoshare.cli.dry_run_report import DryRunReport, ReplayedEvent
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
from ecoshare.governance.engine import GovernanceEngine, Refused


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
class SampledMessage:
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
    """An :class:`SampledMessage` shaped as the consumed message the engine admits."""

    message: SampledMessage

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
) -> list[SampledMessage]:
    """The last ``sample`` messages over the ingress topics of ``event_types``, oldest first.

    Each partition is read from ``sample`` records before its end up to its end, so the
    newest ``sample`` overall are among them; they are ordered by message timestamp.
    """
    topics = {where.names.ingress(event_type): event_type for event_type in event_types}
    found: list[SampledMessage] = []
    try:
        starts = []
        partitions = topic_partitions(
            where.bootstrap_servers, list(topics), timeout_seconds=timeout_seconds
        )
        for topic, partition in partitions:
            # A start before the log's first offset (retention) is read from the
            # earliest one: read_to_end's consumer resets to it.
            end = partition_end(
                where.bootstrap_servers, topic, partition, timeout_seconds=timeout_seconds
            )
            starts.append((topic, partition, max(0, end - sample)))
        for message in read_to_end(
            where.bootstrap_servers, starts, timeout_seconds=timeout_seconds
        ):
            found.append(
                SampledMessage(
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
    found.sort(key=lambda item: (item.timestamp_ms, item.event_type, item.partition, item.offset))
    return found[-sample:]


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


def _decided_by_the_engine(where: Endpoints, messages: list[SampledMessage]) -> EngineDecisions:
    """The workers' decisions on the sampled messages, from their audit trail; empty
    for those not audited yet."""
    from ecoshare.adapters.kafka.audit_reading import scan_audit
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
    messages: list[SampledMessage],
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
            verdict = engine.admission(_AsConsumed(message), state, now_ms)
            verdicts[position] = verdict.reason.value if isinstance(verdict, Refused) else None
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
    messages: list[SampledMessage],
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
