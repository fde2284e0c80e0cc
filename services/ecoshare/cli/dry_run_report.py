"""What a dry-run found, as a table for people and as JSON for scripts.

:class:`DryRunReport` counts, side by side, what the subscriber receives of the sampled
ingress events under the agreements in force and under the proposal; quarantined
events reach no subscriber under either and are counted once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from ecoshare.application.governance_plan import display_json
from ecoshare.codec.event_json import to_json_value
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.policy import Decision
from ecoshare.terminal.tables import print_table


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
