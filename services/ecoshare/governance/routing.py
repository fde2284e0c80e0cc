"""Routing: which candidate subscriber receives an admitted event, under which agreement.

The precedence is :func:`ecoshare.domain.policy.evaluate_event`'s, split by how often
it can change: per governance-state snapshot, the candidate subscribers and the
agreements covering each (:class:`RouteTable`); per batch (one clock per batch),
whether publisher and subscriber are enabled, which agreements are in force and their
compiled plans (:class:`RouteRuntime`); per event, only row filters, rate limits and
consent. Each decision becomes an audit entry pointing at a shared template.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner
from ecoshare.domain.policy import AgreementRateLimiter, WithholdReason
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.admission import Admitted, WriterSchema
from ecoshare.governance.batch import BatchCounts, bump
from ecoshare.governance.plan import DeliveryPlan, RowPredicate
from ecoshare.governance.rendering import AGREEMENT_HEADER, DeliveryPlans

TemplateOf = Callable[[tuple[Any, ...], Callable[[], dict[str, Any]]], int]
"""(identity of a decision template, its builder) -> its index in the batch's list."""
NO_CONSENT: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Route:
    subscriber_id: str
    subscriber_enabled: bool
    covering: tuple[Agreement, ...]


class RouteTable:
    """The candidate routes of each (event type, publisher), for one state snapshot."""

    def __init__(self, state: GovernanceState) -> None:
        self.state = state
        self._routes: dict[tuple[str, str], tuple[Route, ...]] = {}

    def routes(self, event_type: str, publisher_id: str) -> tuple[Route, ...]:
        key = (event_type, publisher_id)
        found = self._routes.get(key)
        if found is None:
            state = self.state
            routes = []
            for subscriber_id in state.candidate_subscribers(event_type):
                subscriber = state.partner(subscriber_id)
                routes.append(
                    Route(
                        subscriber_id,
                        subscriber is not None and subscriber.enabled,
                        tuple(state.agreements_for(publisher_id, subscriber_id, event_type)),
                    )
                )
            found = self._routes[key] = tuple(routes)
        return found


@dataclass(slots=True)
class Candidate:
    """An agreement in force for a route, compiled for the batch's writer schema."""

    agreement: Agreement
    plan: DeliveryPlan
    frame_header: bytes
    predicate: RowPredicate | None
    agreement_header: tuple[str, bytes]
    native_plan: Any = None  # ecoshare._native.Plan of the same plan, with the native core

    def render(self, body: bytes, offsets: Sequence[int], allowed: frozenset[str]) -> bytes:
        """The framed delivery of ``body``, with the consented personal fields ``allowed``."""
        native_plan = self.native_plan
        if native_plan is not None:
            rendered: bytes = native_plan.render(self.frame_header, body, offsets, allowed)
            return rendered
        return self.frame_header + self.plan.render(body, offsets, allowed)


@dataclass(slots=True)
class RouteRuntime:
    """One subscriber's route during one batch: its fixed outcome or its candidates,
    and its counts (kept here, not in shared dicts, to keep the per-event path short)."""

    subscriber_id: str
    event_type: str = ""
    schema_id: int = 0  # the writer schema: plans, so delivered field lists, depend on it
    static_reason: WithholdReason | None = None
    static_closest: Agreement | None = None
    in_force_first: Agreement | None = None
    refused: Agreement | None = None
    topic: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    received: int = 0
    delivered: int = 0
    withheld: dict[str, int] = field(default_factory=dict)
    delivered_ingested_ms: list[int] = field(default_factory=list)
    _withheld_templates: dict[tuple[str, str | None], int] = field(default_factory=dict)
    _delivered_templates: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)

    def withhold(self, reason: WithholdReason, closest: tuple[Agreement, ...]) -> None:
        self.static_reason = reason
        self.static_closest = closest[0] if closest else None

    def choose(self, body: bytes, offsets: Sequence[int]) -> Candidate | None:
        """The first candidate whose row filter passes the event."""
        for candidate in self.candidates:
            predicate = candidate.predicate
            if predicate is None or predicate(body, offsets):
                return candidate
        return None

    def withheld_entry(
        self, template: TemplateOf, reason: WithholdReason, agreement: Agreement | None = None
    ) -> list[Any]:
        """Count a withheld decision; its audit entry."""
        value = reason.value
        self.withheld[value] = self.withheld.get(value, 0) + 1
        return [self.withheld_template(template, reason, agreement)]

    def withheld_template(
        self, template: TemplateOf, reason: WithholdReason, agreement: Agreement | None = None
    ) -> int:
        """The template index of a withheld decision (counted by the caller)."""
        value = reason.value
        closest = agreement or self._closest(reason)
        key = (value, closest.agreement_id if closest else None)
        found = self._withheld_templates.get(key)
        if found is None:
            found = self._withheld_templates[key] = template(
                (self.subscriber_id, *key, closest.version if closest else None),
                lambda: {
                    "subscriber": self.subscriber_id,
                    "outcome": "withheld",
                    "reason": value,
                    "agreement_id": closest.agreement_id if closest else None,
                    "agreement_version": closest.version if closest else None,
                },
            )
        return found

    def _closest(self, reason: WithholdReason) -> Agreement | None:
        if reason is WithholdReason.DELIVERY_SCHEMA_REFUSED:
            return self.refused
        if reason is WithholdReason.ROW_FILTER:
            return self.in_force_first
        return self.static_closest

    def delivered_template(
        self, template: TemplateOf, candidate: Candidate, missing: tuple[str, ...]
    ) -> int:
        agreement = candidate.agreement
        key = (agreement.agreement_id, missing)
        found = self._delivered_templates.get(key)
        if found is None:
            found = self._delivered_templates[key] = template(
                (
                    self.subscriber_id,
                    "delivered",
                    agreement.agreement_id,
                    agreement.version,
                    self.schema_id,
                    missing,
                ),
                lambda: _delivered_template(self.subscriber_id, agreement, candidate.plan, missing),
            )
        return found

    def add_to(self, counts: BatchCounts) -> None:
        if not self.received:
            return
        subscriber, event_type = self.subscriber_id, self.event_type
        bump(counts.subscriber_received, (subscriber, event_type), self.received)
        if self.delivered:
            bump(counts.delivered, (subscriber, event_type), self.delivered)
            counts.delivered_ingested_ms.setdefault(subscriber, []).extend(
                self.delivered_ingested_ms
            )
        for reason, count in self.withheld.items():
            bump(counts.withheld, (subscriber, event_type, reason), count)


Delivery = tuple[RouteRuntime, Candidate, frozenset[str]]
"""A delivery decided: the route, the agreement's candidate, the consented fields."""


class BatchRouting:
    """Routing during one batch: one state, one clock, shared decision templates."""

    def __init__(
        self,
        table: RouteTable,
        plans: DeliveryPlans,
        delivery_topic: Callable[[str, str], str],
        limiter: AgreementRateLimiter,
        now: datetime,
    ) -> None:
        self._table = table
        self._plans = plans
        self._delivery_topic = delivery_topic
        self._limiter = limiter
        self._now = now
        self.templates: list[dict[str, Any]] = []
        self._template_ids: dict[tuple[Any, ...], int] = {}
        self._runtimes: dict[tuple[int, str], tuple[RouteRuntime, ...]] = {}

    def template(self, key: tuple[Any, ...], build: Callable[[], dict[str, Any]]) -> int:
        found = self._template_ids.get(key)
        if found is None:
            found = self._template_ids[key] = len(self.templates)
            self.templates.append(build())
        return found

    def runtimes(self, writer: WriterSchema, publisher: Partner) -> tuple[RouteRuntime, ...]:
        """What each candidate subscriber's route does for this batch's events of
        ``writer``'s schema from ``publisher`` (validity decided once per batch)."""
        key = (writer.schema_id, publisher.partner_id)
        found = self._runtimes.get(key)
        if found is not None:
            return found
        now = self._now
        runtimes = []
        for route in self._table.routes(writer.event_type, publisher.partner_id):
            runtime = RouteRuntime(route.subscriber_id, writer.event_type, writer.schema_id)
            if not publisher.enabled:
                runtime.withhold(WithholdReason.PUBLISHER_DISABLED, route.covering[:1])
            elif not route.subscriber_enabled:
                runtime.withhold(WithholdReason.SUBSCRIBER_DISABLED, route.covering[:1])
            elif not route.covering:
                runtime.withhold(WithholdReason.NO_AGREEMENT, ())
            else:
                in_force = tuple(a for a in route.covering if a.is_in_force(now))
                if not in_force:
                    runtime.withhold(WithholdReason.AGREEMENT_NOT_IN_FORCE, route.covering[:1])
                else:
                    runtime.in_force_first = in_force[0]
                    runtime.topic = self._delivery_topic(route.subscriber_id, writer.event_type)
                    self._add_candidates(runtime, in_force, writer)
            runtimes.append(runtime)
        found = self._runtimes[key] = tuple(runtimes)
        return found

    def _add_candidates(
        self, runtime: RouteRuntime, in_force: tuple[Agreement, ...], writer: WriterSchema
    ) -> None:
        plans = self._plans
        for agreement in in_force:
            compiled = plans.plan(agreement, writer)
            if isinstance(compiled, str):
                runtime.refused = runtime.refused or agreement
                continue
            plan, frame_header = compiled
            runtime.candidates.append(
                Candidate(
                    agreement,
                    plan,
                    frame_header,
                    plans.row_filter(plan, writer),
                    (AGREEMENT_HEADER, f"{agreement.agreement_id}:{agreement.version}".encode()),
                    plans.native_plan(plan),
                )
            )

    def decide(
        self,
        runtimes: tuple[RouteRuntime, ...],
        event: Admitted,
        row: list[Any],
        ingested_ms: int,
    ) -> list[Delivery]:
        """Every route's decision on ``event``: its audit entry appended to ``row`` (one
        per route, in route order), the deliveries returned for rendering."""
        deliveries: list[Delivery] = []
        template = self.template
        body, offsets = event.body, event.offsets
        for runtime in runtimes:
            runtime.received += 1
            if runtime.static_reason is not None:
                row.append(runtime.withheld_entry(template, runtime.static_reason))
                continue
            chosen = runtime.choose(body, offsets)
            if chosen is None:
                reason = (
                    WithholdReason.DELIVERY_SCHEMA_REFUSED
                    if runtime.refused is not None
                    else WithholdReason.ROW_FILTER
                )
                row.append(runtime.withheld_entry(template, reason))
                continue
            agreement = chosen.agreement
            if agreement.limits is not None and not self._limiter.try_acquire(
                agreement.agreement_id, agreement.limits, self._now
            ):
                row.append(runtime.withheld_entry(template, WithholdReason.RATE_LIMITED, agreement))
                continue
            plan = chosen.plan
            allowed = NO_CONSENT
            consent_ids: list[str] = []
            missing: tuple[str, ...] = ()
            if plan.personal_fields:
                if event.subject:
                    allowed, consent_ids = consented_fields(
                        self._table.state,
                        plan,
                        event.subject,
                        event.publisher_id,
                        runtime.subscriber_id,
                        self._now,
                    )
                missing = tuple(name for name in plan.personal_fields if name not in allowed)
            entry: list[Any] = [runtime.delivered_template(template, chosen, missing)]
            if consent_ids:
                entry.append(consent_ids)
            row.append(entry)
            runtime.delivered += 1
            runtime.delivered_ingested_ms.append(ingested_ms)
            deliveries.append((runtime, chosen, allowed))
        return deliveries

    def undo(self, runtimes: Sequence[RouteRuntime] | None, row: list[Any]) -> None:
        """Take back the counts of an event whose governing failed part-way.

        ``row`` holds one entry per route decided so far (after the five event columns);
        the route being decided when it failed has only counted the event as received.
        Rate-limit tokens already taken stay taken.
        """
        if runtimes is None:
            return
        decided = len(row) - 5
        for runtime, entry in zip(runtimes, row[5:], strict=False):
            runtime.received -= 1
            template = self.templates[entry[0]]
            if template["outcome"] == "delivered":
                runtime.delivered -= 1
                runtime.delivered_ingested_ms.pop()
            else:
                runtime.withheld[template["reason"]] -= 1
        if decided < len(runtimes):
            runtimes[decided].received -= 1

    def add_counts(self, counts: BatchCounts) -> None:
        for runtimes in self._runtimes.values():
            for runtime in runtimes:
                runtime.add_to(counts)


def consented_fields(
    state: GovernanceState,
    plan: DeliveryPlan,
    subject: str,
    publisher_id: str,
    subscriber_id: str,
    now: datetime,
) -> tuple[frozenset[str], list[str]]:
    """The personal fields of ``plan`` that ``subject`` consented to give the
    subscriber for the agreement's purpose, and the ids of those consents (sorted)."""
    purpose = plan.agreement.effective_consent_purpose
    allowed: set[str] = set()
    consent_ids: set[str] = set()
    index = state.consents
    if not index.consents_of(subject, publisher_id):
        return NO_CONSENT, []
    for name in plan.personal_fields:
        consents = index.active_consents_for(
            subject, publisher_id, subscriber_id, purpose, name, now
        )
        if consents:
            allowed.add(name)
            consent_ids.update(consent.consent_id for consent in consents)
    return frozenset(allowed), sorted(consent_ids)


def _delivered_template(
    subscriber_id: str, agreement: Agreement, plan: DeliveryPlan, missing: tuple[str, ...]
) -> dict[str, Any]:
    delivered = [name for name in plan.fields_delivered if name not in missing]
    return {
        "subscriber": subscriber_id,
        "outcome": "delivered",
        "reason": None,
        "agreement_id": agreement.agreement_id,
        "agreement_version": agreement.version,
        "fields_delivered": delivered,
        "fields_dropped": [*plan.fields_dropped, *missing],
        "fields_transformed": dict(plan.fields_transformed),
        "personal_fields_without_consent": list(missing),
    }
