"""Consent of data subjects to share their personal fields.

Modelled after ISO/IEC TS 27560 and Kantara consent receipts: a subject lets a
controller (the publishing partner) share the fields in ``scope`` with a grantee (one
subscriber, or ``*`` for any) for one purpose, from ``given_at`` until it expires or is
withdrawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ecoshare.domain.classification import Classification
from ecoshare.domain.partners import PartnerId
from ecoshare.domain.timestamps import UtcTimestamp

ANY_GRANTEE = "*"

NonEmpty = Annotated[str, Field(min_length=1)]
GranteeRef = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9-]{0,62})$")]


class ConsentRecord(BaseModel):
    """One consent, in its latest state (a withdrawal republishes it with
    ``withdrawn_at`` set).

    Invariants: ``scope`` is non-empty; ``expires_at``, when set, is after ``given_at``;
    all timestamps are UTC at millisecond precision.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    consent_id: NonEmpty
    subject: NonEmpty
    controller: PartnerId
    grantee: GranteeRef
    purpose: NonEmpty
    scope: Annotated[frozenset[NonEmpty], Field(min_length=1)]
    given_at: UtcTimestamp
    expires_at: UtcTimestamp | None = None
    withdrawn_at: UtcTimestamp | None = None

    @model_validator(mode="after")
    def _check_period(self) -> Self:
        if self.expires_at is not None and self.expires_at <= self.given_at:
            raise ValueError(
                f"expires_at {self.expires_at.isoformat()} must be after "
                f"given_at {self.given_at.isoformat()}"
            )
        return self

    def is_active(self, at: datetime) -> bool:
        """True when ``given_at <= at``, ``at < expires_at`` and ``at < withdrawn_at``.

        A consent withdrawn at exactly ``at`` is no longer active at ``at``.
        """
        if at < self.given_at:
            return False
        if self.expires_at is not None and at >= self.expires_at:
            return False
        return self.withdrawn_at is None or at < self.withdrawn_at

    def covers_field(self, field: str, classification: Classification) -> bool:
        """True when ``scope`` names the field or its classification (e.g. "personal")."""
        return field in self.scope or classification.value in self.scope

    def grants_to(self, grantee: str) -> bool:
        """True when the consent names ``grantee`` or any grantee (``*``)."""
        return self.grantee in (grantee, ANY_GRANTEE)

    def to_avro(self) -> dict[str, Any]:
        """The ``ConsentRecord`` Avro dict; ``scope`` becomes a sorted array."""
        return {
            "consent_id": self.consent_id,
            "subject": self.subject,
            "controller": self.controller,
            "grantee": self.grantee,
            "purpose": self.purpose,
            "scope": sorted(self.scope),
            "given_at": self.given_at,
            "expires_at": self.expires_at,
            "withdrawn_at": self.withdrawn_at,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """Validate a ``ConsentRecord`` Avro dict into the model."""
        return cls.model_validate(dict(record))


class ConsentIndex:
    """Immutable index of consents by ``(subject, controller)``.

    Holds at most one record per ``consent_id`` (a later record with the same id replaces
    the earlier one). Updates return a new index and share the untouched buckets.
    """

    __slots__ = ("_by_id", "_by_key")

    def __init__(self, consents: Iterable[ConsentRecord] = ()) -> None:
        by_id: dict[str, ConsentRecord] = {}
        for consent in consents:
            by_id[consent.consent_id] = consent
        by_key: dict[tuple[str, str], tuple[ConsentRecord, ...]] = {}
        for consent in sorted(by_id.values(), key=lambda item: item.consent_id):
            key = (consent.subject, consent.controller)
            by_key[key] = (*by_key.get(key, ()), consent)
        self._by_id = by_id
        self._by_key = by_key

    @classmethod
    def _from_parts(
        cls,
        by_id: dict[str, ConsentRecord],
        by_key: dict[tuple[str, str], tuple[ConsentRecord, ...]],
    ) -> ConsentIndex:
        index = cls.__new__(cls)
        index._by_id = by_id
        index._by_key = by_key
        return index

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[ConsentRecord]:
        return iter(sorted(self._by_id.values(), key=lambda item: item.consent_id))

    def __contains__(self, consent_id: object) -> bool:
        return consent_id in self._by_id

    def get(self, consent_id: str) -> ConsentRecord | None:
        """The consent with this id, or ``None``."""
        return self._by_id.get(consent_id)

    def with_consent(self, consent: ConsentRecord) -> ConsentIndex:
        """A new index holding ``consent`` in place of any record with its id."""
        removed = self.without_consent(consent.consent_id)
        by_id = dict(removed._by_id)
        by_id[consent.consent_id] = consent
        by_key = dict(removed._by_key)
        key = (consent.subject, consent.controller)
        bucket = (*by_key.get(key, ()), consent)
        by_key[key] = tuple(sorted(bucket, key=lambda item: item.consent_id))
        return ConsentIndex._from_parts(by_id, by_key)

    def without_consent(self, consent_id: str) -> ConsentIndex:
        """A new index without the record of this id (``self`` when there is none)."""
        existing = self._by_id.get(consent_id)
        if existing is None:
            return self
        by_id = dict(self._by_id)
        del by_id[consent_id]
        by_key = dict(self._by_key)
        key = (existing.subject, existing.controller)
        remaining = tuple(item for item in by_key[key] if item.consent_id != consent_id)
        if remaining:
            by_key[key] = remaining
        else:
            del by_key[key]
        return ConsentIndex._from_parts(by_id, by_key)

    def consents_of(self, subject: str, controller: str) -> tuple[ConsentRecord, ...]:
        """Every consent (active or not) of ``subject`` towards ``controller``, by id."""
        return self._by_key.get((subject, controller), ())

    def active_consents_for(
        self,
        subject: str,
        controller: str,
        grantee: str,
        purpose: str,
        field: str,
        at: datetime,
        *,
        field_classification: Classification = Classification.PERSONAL,
    ) -> list[ConsentRecord]:
        """Consents that let ``controller`` share ``field`` of ``subject`` with ``grantee``.

        A consent matches when it is active at ``at``, names ``grantee`` or ``*``, names
        exactly ``purpose``, and its scope holds ``field`` or the name of
        ``field_classification``. The result is ordered by ``consent_id``.
        """
        return [
            consent
            for consent in self._by_key.get((subject, controller), ())
            if consent.purpose == purpose
            and consent.grants_to(grantee)
            and consent.covers_field(field, field_classification)
            and consent.is_active(at)
        ]
