"""The live governance state: partners, agreements and consents as one snapshot.

A :class:`GovernanceState` never changes; every update returns a new snapshot with a new
``version``. Two fingerprints are kept:

- ``version`` changes with every update of anything;
- ``policy_version`` changes only with partners and agreements, so that plans compiled
  from them can be cached across consent updates (consents are looked up per event).

Both are hex digests chained over the updates, so replicas that apply the same updates
in the same order agree on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentIndex, ConsentRecord
from ecoshare.domain.partners import Partner


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def _chain(previous: str, kind: str, payload: Any) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(previous.encode())
    digest.update(b"\x00" + kind.encode() + b"\x00")
    digest.update(json.dumps(payload, sort_keys=True, default=_json_default).encode())
    return digest.hexdigest()


def _latest_agreements(agreements: Iterable[Agreement]) -> dict[str, Agreement]:
    latest: dict[str, Agreement] = {}
    for agreement in agreements:
        current = latest.get(agreement.agreement_id)
        if current is None or agreement.version >= current.version:
            latest[agreement.agreement_id] = agreement
    return latest


class GovernanceState:
    """Immutable snapshot of partners, agreements (latest version per id) and consents.

    Build it from iterables; on duplicates, the last partner or consent with an id wins
    and, per ``agreement_id``, the highest version wins (the last one among equals).
    """

    __slots__ = (
        "_agreements",
        "_agreements_by_subscriber",
        "_consents",
        "_partners",
        "_policy_version",
        "_subscribers_by_type",
        "_version",
    )

    def __init__(
        self,
        partners: Iterable[Partner] = (),
        agreements: Iterable[Agreement] = (),
        consents: Iterable[ConsentRecord] = (),
    ) -> None:
        partner_map = {partner.partner_id: partner for partner in partners}
        agreement_map = _latest_agreements(agreements)
        consent_index = ConsentIndex(consents)
        policy_version = _chain(
            "",
            "build",
            [
                [partner_map[key].to_avro() for key in sorted(partner_map)],
                [agreement_map[key].to_avro() for key in sorted(agreement_map)],
            ],
        )
        version = _chain(policy_version, "consents", [item.to_avro() for item in consent_index])
        self._assign(partner_map, agreement_map, consent_index, version, policy_version)

    def _assign(
        self,
        partners: dict[str, Partner],
        agreements: dict[str, Agreement],
        consents: ConsentIndex,
        version: str,
        policy_version: str,
    ) -> None:
        self._partners = partners
        self._agreements = agreements
        self._consents = consents
        self._version = version
        self._policy_version = policy_version
        by_type: dict[str, set[str]] = {}
        by_subscriber: dict[str, list[Agreement]] = {}
        for agreement in sorted(agreements.values(), key=lambda item: item.agreement_id):
            by_subscriber.setdefault(agreement.subscriber, []).append(agreement)
            for event_type in agreement.event_types:
                by_type.setdefault(event_type, set()).add(agreement.subscriber)
        self._subscribers_by_type = {key: tuple(sorted(value)) for key, value in by_type.items()}
        self._agreements_by_subscriber = {key: tuple(value) for key, value in by_subscriber.items()}

    def _derive(
        self,
        kind: str,
        payload: Any,
        *,
        partners: dict[str, Partner] | None = None,
        agreements: dict[str, Agreement] | None = None,
        consents: ConsentIndex | None = None,
    ) -> GovernanceState:
        policy_changed = partners is not None or agreements is not None
        state = GovernanceState.__new__(GovernanceState)
        state._assign(
            self._partners if partners is None else partners,
            self._agreements if agreements is None else agreements,
            self._consents if consents is None else consents,
            _chain(self._version, kind, payload),
            _chain(self._policy_version, kind, payload) if policy_changed else self._policy_version,
        )
        return state

    @property
    def version(self) -> str:
        """Fingerprint of this snapshot; differs after every update."""
        return self._version

    @property
    def policy_version(self) -> str:
        """Fingerprint of partners and agreements; consent updates leave it unchanged."""
        return self._policy_version

    @property
    def partners(self) -> Mapping[str, Partner]:
        """Partners by partner id (read-only)."""
        return MappingProxyType(self._partners)

    @property
    def agreements(self) -> Mapping[str, Agreement]:
        """Latest version of every agreement, by agreement id (read-only)."""
        return MappingProxyType(self._agreements)

    @property
    def consents(self) -> ConsentIndex:
        """Every consent record, indexed by subject and controller."""
        return self._consents

    def partner(self, partner_id: str) -> Partner | None:
        """The partner with this id, or ``None``."""
        return self._partners.get(partner_id)

    def candidate_subscribers(self, event_type: str) -> list[str]:
        """Subscribers holding any agreement (in force or not) naming ``event_type``, sorted.

        Disabled or unknown subscribers are included: every candidate gets a decision.
        """
        return list(self._subscribers_by_type.get(event_type, ()))

    def agreements_for(
        self, publisher_id: str, subscriber_id: str, event_type: str
    ) -> list[Agreement]:
        """Agreements of ``subscriber_id`` covering the publisher and event type, by id.

        Validity is not checked here; see :meth:`Agreement.is_in_force`.
        """
        return [
            agreement
            for agreement in self._agreements_by_subscriber.get(subscriber_id, ())
            if agreement.covers(publisher_id, event_type)
        ]

    def with_partner(self, partner: Partner) -> GovernanceState:
        """The state with ``partner`` added or replaced (``self`` if already identical)."""
        if self._partners.get(partner.partner_id) == partner:
            return self
        partners = {**self._partners, partner.partner_id: partner}
        return self._derive("partner", partner.to_avro(), partners=partners)

    def without_partner(self, partner_id: str) -> GovernanceState:
        """The state without the partner (``self`` if there is none)."""
        if partner_id not in self._partners:
            return self
        partners = {key: value for key, value in self._partners.items() if key != partner_id}
        return self._derive("partner-removed", partner_id, partners=partners)

    def with_agreement(self, agreement: Agreement) -> GovernanceState:
        """The state with ``agreement`` unless a higher version of it is already held.

        Returns ``self`` when the agreement is older than, or identical to, the one held.
        """
        current = self._agreements.get(agreement.agreement_id)
        if current is not None and (current.version > agreement.version or current == agreement):
            return self
        agreements = {**self._agreements, agreement.agreement_id: agreement}
        return self._derive("agreement", agreement.to_avro(), agreements=agreements)

    def without_agreement(self, agreement_id: str) -> GovernanceState:
        """The state without the agreement (``self`` if there is none)."""
        if agreement_id not in self._agreements:
            return self
        agreements = {key: value for key, value in self._agreements.items() if key != agreement_id}
        return self._derive("agreement-removed", agreement_id, agreements=agreements)

    def with_consent(self, consent: ConsentRecord) -> GovernanceState:
        """The state with ``consent`` added or replaced (``self`` if already identical)."""
        if self._consents.get(consent.consent_id) == consent:
            return self
        consents = self._consents.with_consent(consent)
        return self._derive("consent", consent.to_avro(), consents=consents)

    def without_consent(self, consent_id: str) -> GovernanceState:
        """The state without the consent record (``self`` if there is none)."""
        if consent_id not in self._consents:
            return self
        consents = self._consents.without_consent(consent_id)
        return self._derive("consent-removed", consent_id, consents=consents)
