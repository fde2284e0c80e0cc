"""The reference decision function: who receives what of one event, and why not.

:func:`evaluate_event` returns exactly one :class:`Decision` per candidate subscriber of
the event type (every subscriber holding an agreement for it, in force or not), so that
for each subscriber received = delivered + withheld.

For one subscriber, the first applicable reason in this order decides a withholding:

1. ``publisher_disabled``: the publisher is unknown or disabled;
2. ``subscriber_disabled``: the subscriber is unknown or disabled;
3. ``no_agreement``: no agreement of the subscriber covers the publisher and event type;
4. ``agreement_not_in_force``: covering agreements exist, none is in force at ``now``;
5. ``row_filter``: agreements in force exist, the row filters of none of them hold;
6. ``rate_limited``: the chosen agreement's limits are exhausted.

Otherwise the event is delivered under the chosen agreement: the first (by
``agreement_id``) that covers the publisher and event type, is in force and whose row
filters hold. A withheld decision names the agreement that came closest (the first
covering one, the first in force, or the chosen one), or none.

Personal fields are delivered only under an active consent of the event's data subject
(``contact_subject_id``) given to the publisher as controller, for this subscriber or
any (``*``), for the agreement's consent purpose, with a scope naming the field or
``personal``. Without a subject there is no consent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from ecoshare.domain.agreements import Agreement, FieldAction, Limits
from ecoshare.domain.classification import Classification
from ecoshare.domain.projection import project_record, projected_field_names
from ecoshare.domain.state import GovernanceState
from ecoshare.domain.timestamps import MILLIS_PER_DAY, to_epoch_millis

Outcome = Literal["delivered", "withheld"]

# Token-bucket levels are kept in integer units so that the arithmetic is exact: one
# event costs a minute's worth of milliseconds, and a cap of N events per minute refills
# N units per elapsed millisecond.
_UNITS_PER_EVENT = 60_000


class WithholdReason(StrEnum):
    """Why an event was not delivered to a subscriber (see the module's precedence)."""

    NO_AGREEMENT = "no_agreement"
    AGREEMENT_NOT_IN_FORCE = "agreement_not_in_force"
    ROW_FILTER = "row_filter"
    RATE_LIMITED = "rate_limited"
    PUBLISHER_DISABLED = "publisher_disabled"
    SUBSCRIBER_DISABLED = "subscriber_disabled"
    # Raised by the data plane, never by evaluate_event: the registry refused the
    # subscriber's delivery schema for this agreement version (an incompatible change).
    DELIVERY_SCHEMA_REFUSED = "delivery_schema_refused"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one event for one subscriber.

    Delivered: ``record`` is the projected record; ``fields_delivered`` (granted fields
    whose values reach the subscriber) and ``fields_dropped`` (every other field of the
    event, including granted personal fields without consent) partition the event's
    fields, both in catalog order. Withheld: ``reason`` is set, ``record`` is ``None``
    and the field lists are empty.
    """

    event_id: str
    subscriber_id: str
    outcome: Outcome
    reason: WithholdReason | None
    agreement_id: str | None
    agreement_version: int | None
    consent_ids: tuple[str, ...] = ()
    fields_delivered: tuple[str, ...] = ()
    fields_dropped: tuple[str, ...] = ()
    fields_transformed: Mapping[str, FieldAction] = field(default_factory=dict)
    personal_fields_without_consent: tuple[str, ...] = ()
    record: dict[str, object] | None = None

    @property
    def delivered(self) -> bool:
        """True when the subscriber receives ``record``."""
        return self.outcome == "delivered"


class AgreementRateLimiter:
    """Per-agreement rate and volume caps, deterministic under an explicit clock.

    ``max_events_per_minute`` is a token bucket holding up to N events, refilled at N per
    60 s (so at most N events in any burst, N per minute sustained);
    ``max_events_per_day`` counts deliveries per UTC calendar day. State is kept per
    ``agreement_id`` across versions. A ``now`` earlier than one seen before refills
    nothing and counts towards the latest day seen.
    """

    __slots__ = ("_buckets", "_days")

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[int, int]] = {}
        self._days: dict[str, tuple[int, int]] = {}

    def try_acquire(self, agreement_id: str, limits: Limits, now: datetime) -> bool:
        """Take one event from the agreement's allowance at ``now``; False if exhausted.

        Nothing is consumed when the answer is False.
        """
        now_ms = to_epoch_millis(now)
        per_minute = limits.max_events_per_minute
        per_day = limits.max_events_per_day
        bucket: tuple[int, int] | None = None
        if per_minute is not None:
            capacity = per_minute * _UNITS_PER_EVENT
            level, last_ms = self._buckets.get(agreement_id, (capacity, now_ms))
            level = min(capacity, level + max(0, now_ms - last_ms) * per_minute)
            bucket = (level, max(last_ms, now_ms))
            self._buckets[agreement_id] = bucket
            if level < _UNITS_PER_EVENT:
                return False
        day_count: tuple[int, int] | None = None
        if per_day is not None:
            day = now_ms // MILLIS_PER_DAY
            seen_day, count = self._days.get(agreement_id, (day, 0))
            if day > seen_day:
                seen_day, count = day, 0
            if count >= per_day:
                return False
            day_count = (seen_day, count + 1)
        if bucket is not None:
            self._buckets[agreement_id] = (bucket[0] - _UNITS_PER_EVENT, bucket[1])
        if day_count is not None:
            self._days[agreement_id] = day_count
        return True

    def forget(self, agreement_id: str) -> None:
        """Drop the agreement's counters (e.g. when the agreement is removed)."""
        self._buckets.pop(agreement_id, None)
        self._days.pop(agreement_id, None)


def _withheld(
    event_id: str, subscriber_id: str, reason: WithholdReason, agreement: Agreement | None
) -> Decision:
    return Decision(
        event_id=event_id,
        subscriber_id=subscriber_id,
        outcome="withheld",
        reason=reason,
        agreement_id=None if agreement is None else agreement.agreement_id,
        agreement_version=None if agreement is None else agreement.version,
    )


def _delivered(
    record: Mapping[str, object],
    event_id: str,
    publisher_id: str,
    subscriber_id: str,
    agreement: Agreement,
    state: GovernanceState,
    classification: Mapping[str, Classification],
    now: datetime,
    hash_key: bytes | None,
) -> Decision:
    granted = projected_field_names(agreement, classification)
    subject = record.get("contact_subject_id")
    purpose = agreement.effective_consent_purpose
    personal_allowed: set[str] = set()
    consent_ids: set[str] = set()
    without_consent: list[str] = []
    for name in granted:
        if classification[name] is not Classification.PERSONAL:
            continue
        consents = (
            state.consents.active_consents_for(
                subject, publisher_id, subscriber_id, purpose, name, now
            )
            if isinstance(subject, str) and subject
            else []
        )
        if consents:
            personal_allowed.add(name)
            consent_ids.update(consent.consent_id for consent in consents)
        else:
            without_consent.append(name)
    projected = project_record(record, agreement, classification, personal_allowed, hash_key)
    withheld_personal = set(without_consent)
    delivered = tuple(name for name in granted if name not in withheld_personal)
    delivered_set = set(delivered)
    return Decision(
        event_id=event_id,
        subscriber_id=subscriber_id,
        outcome="delivered",
        reason=None,
        agreement_id=agreement.agreement_id,
        agreement_version=agreement.version,
        consent_ids=tuple(sorted(consent_ids)),
        fields_delivered=delivered,
        fields_dropped=tuple(name for name in classification if name not in delivered_set),
        fields_transformed={
            name: agreement.fields[name].action
            for name in delivered
            if agreement.fields[name].action is not FieldAction.DELIVER
        },
        personal_fields_without_consent=tuple(without_consent),
        record=projected,
    )


def evaluate_event(
    record: Mapping[str, object],
    event_type: str,
    publisher_id: str,
    state: GovernanceState,
    classification: Mapping[str, Classification],
    now: datetime,
    hash_keys: Mapping[str, bytes],
    limiter: AgreementRateLimiter | None = None,
) -> list[Decision]:
    """One decision per candidate subscriber of ``event_type``, in subscriber-id order.

    ``record`` is the event as fastavro decodes it (timestamps as aware datetimes);
    ``publisher_id`` is the authenticated publisher; ``classification`` lists the event
    type's fields in catalog order; ``now`` is an aware UTC datetime; ``hash_keys`` maps
    subscriber id to its hash key (needed only for agreements with hash rules, else
    :class:`~ecoshare.domain.errors.HashKeyMissingError`). ``limiter``, when given, is
    charged one event per delivery under an agreement with limits.
    """
    event_id = str(record.get("event_id", ""))
    publisher = state.partner(publisher_id)
    publisher_enabled = publisher is not None and publisher.enabled
    decisions: list[Decision] = []
    for subscriber_id in state.candidate_subscribers(event_type):
        covering = state.agreements_for(publisher_id, subscriber_id, event_type)
        first_covering = covering[0] if covering else None
        subscriber = state.partner(subscriber_id)
        if not publisher_enabled:
            reason = WithholdReason.PUBLISHER_DISABLED
        elif subscriber is None or not subscriber.enabled:
            reason = WithholdReason.SUBSCRIBER_DISABLED
        elif first_covering is None:
            reason = WithholdReason.NO_AGREEMENT
        else:
            in_force = [agreement for agreement in covering if agreement.is_in_force(now)]
            chosen = next((item for item in in_force if item.row_filters_pass(record)), None)
            if not in_force:
                reason = WithholdReason.AGREEMENT_NOT_IN_FORCE
            elif chosen is None:
                reason = WithholdReason.ROW_FILTER
                first_covering = in_force[0]
            elif (
                limiter is not None
                and chosen.limits is not None
                and not limiter.try_acquire(chosen.agreement_id, chosen.limits, now)
            ):
                reason = WithholdReason.RATE_LIMITED
                first_covering = chosen
            else:
                decisions.append(
                    _delivered(
                        record,
                        event_id,
                        publisher_id,
                        subscriber_id,
                        chosen,
                        state,
                        classification,
                        now,
                        hash_keys.get(subscriber_id),
                    )
                )
                continue
        decisions.append(_withheld(event_id, subscriber_id, reason, first_covering))
    return decisions
