"""Turns control-plane snapshots (JSON records) into the domain's GovernanceState.

Updates are applied incrementally: only records whose JSON changed are validated
again, so a consent withdrawal costs one model validation, not a rebuild. Records are
validated by the platform's one rule (``ValidRecords`` in
:mod:`ecoshare.adapters.kafka.control_records`): an invalid record leaves the previous
valid one in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from ecoshare.adapters.kafka.control_records import ValidRecords
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.partners import Partner
from ecoshare.domain.state import GovernanceState

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)


class LiveGovernanceState:
    """The latest GovernanceState, following a source of control snapshots."""

    def __init__(self) -> None:
        self.state = GovernanceState()
        self.snapshot_version = -1
        self.invalid_records: dict[tuple[str, str], str] = {}
        self._seen: dict[str, Mapping[str, Any]] = {"partner": {}, "agreement": {}, "consent": {}}
        self._valid: dict[str, Any] = {}

    def follow(self, snapshot: Any) -> GovernanceState:
        """The state for ``snapshot`` (a ControlSnapshot); cheap when nothing changed."""
        if snapshot.version == self.snapshot_version:
            return self.state
        state = self.state
        state = self._apply(
            state,
            "partner",
            snapshot.partners,
            Partner,
            lambda s, m: s.with_partner(m),
            lambda s, k: s.without_partner(k),
        )
        state = self._apply(
            state,
            "agreement",
            snapshot.agreements,
            Agreement,
            lambda s, m: s.with_agreement(m),
            lambda s, k: s.without_agreement(k),
        )
        state = self._apply(
            state,
            "consent",
            snapshot.consents,
            ConsentRecord,
            lambda s, m: s.with_consent(m),
            lambda s, k: s.without_consent(k),
        )
        self.state = state
        self.snapshot_version = snapshot.version
        return state

    def _apply(
        self,
        state: GovernanceState,
        kind: str,
        records: Mapping[str, Mapping[str, Any]],
        model: type[ModelT],
        put: Callable[[GovernanceState, ModelT], GovernanceState],
        remove: Callable[[GovernanceState, str], GovernanceState],
    ) -> GovernanceState:
        seen = self._seen[kind]
        if records is seen:
            return state
        valid: ValidRecords[ModelT] = self._valid.setdefault(kind, ValidRecords(model, topic=kind))
        for key, value in records.items():
            if seen.get(key) is value or seen.get(key) == value:
                continue
            # The platform's one rule: a bad control record must not stop governance;
            # the previous valid version (if any) stays in force and is reported.
            if valid.apply(key, value):
                state = put(state, valid.valid[key])
                self.invalid_records.pop((kind, key), None)
            else:
                self.invalid_records[(kind, key)] = valid.rejected.get(key, "invalid record")
        for key in seen:
            if key not in records:
                valid.apply(key, None)
                self.invalid_records.pop((kind, key), None)
                state = remove(state, key)
        self._seen[kind] = records
        return state
