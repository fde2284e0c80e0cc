"""Planning changes to partners and agreements: what a governance file would change.

Pure functions over domain models, shared by ``ecoshare plan``/``apply`` (through
:mod:`ecoshare.application.governance`) and the API's agreement updates. The rules:

- a record in the file but not applied is added; applied but not in the file, removed;
- a partner that differs in anything is changed;
- an agreement whose content changed must carry a higher version (the audit trail
  names agreement versions, so one version must always mean one content); a version
  lower than the applied one is refused too. A higher version with identical content
  is a change (a deliberate re-issue).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner
from ecoshare.domain.projection import agreement_schema_problems

Action = Literal["add", "change", "remove"]
Kind = Literal["partner", "agreement"]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One value that differs: ``path`` like ``fields.contact_phone.action``."""

    path: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    key: str
    action: Action
    before: Partner | Agreement | None
    after: Partner | Agreement | None
    fields: tuple[FieldChange, ...] = ()

    @property
    def version_change(self) -> tuple[int, int] | None:
        if isinstance(self.before, Agreement) and isinstance(self.after, Agreement):
            return (self.before.version, self.after.version)
        return None

    def to_json(self) -> dict[str, Any]:
        versions = self.version_change
        return {
            "kind": self.kind,
            "id": self.key,
            "action": self.action,
            "version": (
                {"from": versions[0], "to": versions[1]}
                if versions
                else getattr(self.after or self.before, "version", None)
            ),
            "fields": [item.to_json() for item in self.fields],
            "after": None if self.after is None else display_json(self.after),
        }


@dataclass(frozen=True)
class GovernancePlan:
    changes: tuple[Change, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.changes

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [change.to_json() for change in self.changes],
            "summary": {action: self.count(action) for action in ("add", "change", "remove")},
            "problems": list(self.problems),
        }


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_normalise(item) for item in value]
        # Sets (roles, publishers, event types, scope) dump in no fixed order.
        if all(isinstance(item, str) for item in items):
            return sorted(items)
        return items
    return value


def display_json(model: BaseModel, *, compact: bool = False) -> dict[str, Any]:
    """The model as JSON with set-valued fields sorted, for stable display and diffs.

    ``compact`` leaves out values equal to their defaults, as a governance file would.
    """
    return dict(_normalise(model.model_dump(mode="json", exclude_defaults=compact)))


def _model_diff(before: BaseModel, after: BaseModel) -> tuple[FieldChange, ...]:
    changes = diff_values(display_json(before, compact=True), display_json(after, compact=True))
    # The version change is shown with the record, not as one of its fields.
    return tuple(change for change in changes if change.path != "version")


def diff_values(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Every leaf that differs between two JSON values, with its dotted path."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[FieldChange] = []
        for key in [*before, *(k for k in after if k not in before)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in after:
                changes.append(FieldChange(sub, before[key], None))
            elif key not in before:
                changes.append(FieldChange(sub, None, after[key]))
            else:
                changes.extend(diff_values(before[key], after[key], sub))
        return changes
    if (
        isinstance(before, list)
        and isinstance(after, list)
        and len(before) == len(after)
        and any(isinstance(item, dict) for item in [*before, *after])
    ):
        return [
            change
            for index, (old, new) in enumerate(zip(before, after, strict=True))
            for change in diff_values(old, new, f"{path}[{index}]")
        ]
    if before != after:
        return [FieldChange(path or "(record)", before, after)]
    return []


def agreement_update_problem(current: Agreement | None, proposed: Agreement) -> str | None:
    """Why ``proposed`` may not replace ``current`` (None when it may)."""
    if current is None:
        return None
    if proposed.version < current.version:
        return f"version {proposed.version} is lower than the applied version {current.version}"
    if proposed.version == current.version and proposed != current:
        return (
            f"its content changed but its version did not (version {current.version} is "
            f"applied); raise the version to {current.version + 1}"
        )
    return None


def plan_changes(
    *,
    current_partners: Mapping[str, Partner],
    current_agreements: Mapping[str, Agreement],
    partners: list[Partner],
    agreements: list[Agreement],
    event_schemas: Mapping[str, Mapping[str, Any]],
    source: str,
) -> GovernancePlan:
    """What applying ``partners`` and ``agreements`` (a whole file) would change.

    ``source`` names the file in problems, which also name the document path, e.g.
    ``governance.yaml: agreements[2]: ...``. A plan with problems must not be applied.
    """
    problems: list[str] = []
    changes: list[Change] = []
    desired_partners = {partner.partner_id: partner for partner in partners}
    for partner in partners:
        current = current_partners.get(partner.partner_id)
        if current is None:
            changes.append(Change("partner", partner.partner_id, "add", None, partner))
        elif current != partner:
            fields = _model_diff(current, partner)
            changes.append(
                Change("partner", partner.partner_id, "change", current, partner, fields)
            )
    for index, agreement in enumerate(agreements):
        where = f"{source}: agreements[{index}] ({agreement.agreement_id})"
        problems.extend(
            f"{where}: {problem}" for problem in agreement_schema_problems(agreement, event_schemas)
        )
        for publisher in sorted(agreement.publishers):
            if publisher != "*" and publisher not in desired_partners:
                problems.append(f"{where}.publishers: unknown partner {publisher!r}")
        applied = current_agreements.get(agreement.agreement_id)
        refusal = agreement_update_problem(applied, agreement)
        if refusal is not None:
            problems.append(f"{where}.version: {refusal}")
            continue
        if applied is None:
            changes.append(Change("agreement", agreement.agreement_id, "add", None, agreement))
        elif applied != agreement:
            fields = _model_diff(applied, agreement)
            changes.append(
                Change("agreement", agreement.agreement_id, "change", applied, agreement, fields)
            )
    desired_agreements = {agreement.agreement_id for agreement in agreements}
    for key in sorted(current_agreements):
        if key not in desired_agreements:
            changes.append(Change("agreement", key, "remove", current_agreements[key], None))
    for key in sorted(current_partners):
        if key not in desired_partners:
            changes.append(Change("partner", key, "remove", current_partners[key], None))
    return GovernancePlan(tuple(changes), tuple(problems))
