"""Governance use cases: plan and apply a file (with and without prune), and the API's
one-agreement updates under the same version rule."""

from __future__ import annotations

from typing import Any

import pytest

from ecoshare.application.errors import (
    AgreementDoesNotFitError,
    AgreementVersionError,
    PlanHasProblemsError,
    UnknownAgreementError,
)
from ecoshare.application.governance import (
    apply_governance,
    end_agreement,
    keys_lost_by_removal,
    plan_governance,
    save_agreement,
)
from ecoshare.application.partners import issue_partner_key
from tests.strategies import CATALOG
from tests.unit.application_fakes import InMemoryPlatform, agreement, partner

SCHEMAS: dict[str, Any] = CATALOG.event_schemas()


def _applied() -> InMemoryPlatform:
    return InMemoryPlatform().seed(
        partner("shop"), partner("maps"), partner("old"), agreement("a-1"), agreement("a-old")
    )


def _plan(platform: InMemoryPlatform, **changes: Any) -> Any:
    partners = changes.get("partners", [partner("shop"), partner("maps")])
    agreements = changes.get("agreements", [agreement("a-1", 2, purpose="routing")])
    return plan_governance(partners, agreements, platform, SCHEMAS, "governance.yaml")


def test_the_plan_names_adds_changes_and_removals() -> None:
    platform = _applied()
    plan = _plan(platform, agreements=[agreement("a-1", 2, purpose="routing"), agreement("a-2")])
    summary = {(change.kind, change.key, change.action) for change in plan.changes}
    assert summary == {
        ("agreement", "a-1", "change"),
        ("agreement", "a-2", "add"),
        ("agreement", "a-old", "remove"),
        ("partner", "old", "remove"),
    }
    assert plan.problems == ()
    assert platform.writes == []


def test_apply_without_prune_keeps_the_removals() -> None:
    platform = _applied()
    applied = apply_governance(_plan(platform), platform, prune=False)
    assert {(change.kind, change.key) for change in applied.kept} == {
        ("agreement", "a-old"),
        ("partner", "old"),
    }
    assert platform.writes == [("agreement", "a-1", agreement("a-1", 2, purpose="routing"))]
    assert set(platform.partners()) == {"shop", "maps", "old"}
    assert set(platform.agreements()) == {"a-1", "a-old"}


def test_apply_with_prune_removes_what_the_file_does_not_declare() -> None:
    platform = _applied()
    applied = apply_governance(_plan(platform), platform, prune=True)
    assert applied.kept == ()
    assert set(platform.partners()) == {"shop", "maps"}
    assert set(platform.agreements()) == {"a-1"}
    assert ("partner", "old", None) in platform.writes


def test_applying_the_same_file_twice_writes_nothing_the_second_time() -> None:
    platform = _applied()
    apply_governance(_plan(platform), platform, prune=True)
    writes = len(platform.writes)
    again = _plan(platform)
    assert again.empty
    assert apply_governance(again, platform, prune=True).written == ()
    assert len(platform.writes) == writes


def test_a_plan_with_problems_is_refused_whole() -> None:
    platform = _applied()
    # Same version, changed content: the audit trail would name two contents by one version.
    plan = _plan(
        platform,
        agreements=[agreement("a-1", 1, purpose="routing"), agreement("a-2")],
    )
    assert any("a-1" in problem and "raise the version" in problem for problem in plan.problems)
    with pytest.raises(PlanHasProblemsError) as refused:
        apply_governance(plan, platform, prune=True)
    assert refused.value.problems == plan.problems
    assert platform.writes == []


def test_removing_a_partner_names_the_keys_that_stop_working() -> None:
    platform = _applied()
    issue_partner_key("old", None, platform, platform)
    issue_partner_key("old", None, platform, platform)
    assert keys_lost_by_removal(_plan(platform), platform) == {"old": 2}
    assert (
        keys_lost_by_removal(_plan(platform, partners=[*platform.partners().values()]), platform)
        == {}
    )


def test_save_agreement_holds_the_version_rule() -> None:
    platform = _applied()
    with pytest.raises(AgreementVersionError, match="raise the version to 2"):
        save_agreement(agreement("a-1", 1, purpose="routing"), platform, platform, SCHEMAS)
    platform.seed(agreement("a-1", 3))
    with pytest.raises(AgreementVersionError, match="lower than the applied version 3"):
        save_agreement(agreement("a-1", 2), platform, platform, SCHEMAS)
    assert platform.writes == []
    saved = save_agreement(agreement("a-1", 4, purpose="routing"), platform, platform, SCHEMAS)
    assert platform.agreements()["a-1"] == saved


def test_save_agreement_refuses_what_the_platform_lacks() -> None:
    platform = _applied()
    proposal = agreement(
        "a-3", subscriber="nobody", publishers=["shop", "ghost"], fields={"no_such": "deliver"}
    )
    with pytest.raises(AgreementDoesNotFitError) as refused:
        save_agreement(proposal, platform, platform, SCHEMAS)
    problems = refused.value.problems
    assert "subscriber 'nobody' is not a partner" in problems
    assert "publisher 'ghost' is not a partner" in problems
    assert any("no_such" in problem for problem in problems)
    assert platform.writes == []


def test_end_agreement_deletes_it_and_refuses_an_unknown_one() -> None:
    platform = _applied()
    end_agreement("a-old", platform, platform)
    assert platform.writes == [("agreement", "a-old", None)]
    with pytest.raises(UnknownAgreementError):
        end_agreement("a-old", platform, platform)
