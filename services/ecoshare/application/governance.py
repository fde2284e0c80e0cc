"""Governance as code: plan a governance file against the platform, apply it; and the
API's one-agreement updates, held to the same version rule.

``ecoshare plan``/``apply`` and ``PUT``/``DELETE /v1/agreements/{id}`` call these; the
rules of a plan are in :mod:`ecoshare.application.governance_plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecoshare.application.errors import (
    AgreementDoesNotFitError,
    AgreementVersionError,
    PlanHasProblemsError,
    UnknownAgreementError,
)
from ecoshare.application.governance_plan import (
    Change,
    GovernancePlan,
    agreement_update_problem,
    plan_changes,
)
from ecoshare.application.partners import active_key_counts
from ecoshare.application.ports import ControlRecordWriter, PlatformState
from ecoshare.domain.agreements import ANY_PUBLISHER, Agreement
from ecoshare.domain.partners import Partner
from ecoshare.domain.projection import agreement_schema_problems


def plan_governance(
    partners: list[Partner],
    agreements: list[Agreement],
    state: PlatformState,
    event_schemas: Mapping[str, Mapping[str, Any]],
    source: str,
) -> GovernancePlan:
    """What applying a whole governance file would change; nothing is written."""
    return plan_changes(
        current_partners=state.partners(),
        current_agreements=state.agreements(),
        partners=partners,
        agreements=agreements,
        event_schemas=event_schemas,
        source=source,
    )


def refuse_problems(plan: GovernancePlan) -> None:
    """PlanHasProblemsError when the plan must not be applied."""
    if plan.problems:
        raise PlanHasProblemsError(plan.problems)


def removals(plan: GovernancePlan) -> list[Change]:
    return [change for change in plan.changes if change.action == "remove"]


def keys_lost_by_removal(plan: GovernancePlan, state: PlatformState) -> dict[str, int]:
    """Active API keys of each partner the plan removes: they stop working with it."""
    removed = {change.key for change in removals(plan) if change.kind == "partner"}
    if not removed:
        return {}
    counts = active_key_counts(state)
    return {partner_id: counts.get(partner_id, 0) for partner_id in removed}


@dataclass(frozen=True)
class AppliedPlan:
    """The changes written, and the removals kept because pruning was not asked for."""

    written: tuple[Change, ...]
    kept: tuple[Change, ...]


def apply_governance(
    plan: GovernancePlan, writer: ControlRecordWriter, *, prune: bool
) -> AppliedPlan:
    """Write a plan's adds and changes, and its removals only with ``prune``.

    A plan with problems is refused whole. Applying the plan of an applied file writes
    nothing, so applying twice is harmless.
    """
    refuse_problems(plan)
    kept = () if prune else tuple(removals(plan))
    written = tuple(change for change in plan.changes if change not in kept)
    for change in written:
        writer.write(change.kind, change.key, change.after)
    return AppliedPlan(written, kept)


def save_agreement(
    agreement: Agreement,
    state: PlatformState,
    writer: ControlRecordWriter,
    event_schemas: Mapping[str, Mapping[str, Any]],
) -> Agreement:
    """Create or replace one agreement.

    AgreementDoesNotFitError when it names what the catalog or the partners lack;
    AgreementVersionError when changed content keeps (or lowers) the applied version.
    """
    problems = agreement_schema_problems(agreement, event_schemas)
    partners = state.partners()
    if agreement.subscriber not in partners:
        problems.append(f"subscriber {agreement.subscriber!r} is not a partner")
    problems.extend(
        f"publisher {publisher!r} is not a partner"
        for publisher in sorted(agreement.publishers)
        if publisher != ANY_PUBLISHER and publisher not in partners
    )
    if problems:
        raise AgreementDoesNotFitError(problems)
    problem = agreement_update_problem(state.agreements().get(agreement.agreement_id), agreement)
    if problem is not None:
        raise AgreementVersionError(agreement.agreement_id, problem)
    writer.write("agreement", agreement.agreement_id, agreement)
    return agreement


def end_agreement(agreement_id: str, state: PlatformState, writer: ControlRecordWriter) -> None:
    """Remove an agreement: nothing flows under it from the next governed event on."""
    if agreement_id not in state.agreements():
        raise UnknownAgreementError(agreement_id)
    writer.write("agreement", agreement_id, None)
