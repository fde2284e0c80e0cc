"""Onboarding partners, enabling and disabling them, and their API keys.

Used by ``/v1/partners`` and ``ecoshare partners``. API keys are shown once, when
issued: only their salted hash is written (see :mod:`ecoshare.domain.credentials`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecoshare.application.errors import (
    PartnerExistsError,
    UnknownApiKeyError,
    UnknownPartnerError,
)
from ecoshare.application.ports import Clock, ControlRecordWriter, PlatformState, system_clock
from ecoshare.domain.credentials import ApiKeyRecord, IssuedKey, issue_key, revoked
from ecoshare.domain.identity import partner_signing_key
from ecoshare.domain.partners import Partner

FIRST_KEY_LABEL = "created with the partner"


@dataclass(frozen=True)
class RegisteredPartner:
    """A new partner with its secrets, which exist in clear only in this value."""

    partner: Partner
    api_key: IssuedKey
    signing_key: bytes


def existing_partner(state: PlatformState, partner_id: str) -> Partner:
    partner = state.partners().get(partner_id)
    if partner is None:
        raise UnknownPartnerError(partner_id)
    return partner


def register_partner(
    partner: Partner,
    state: PlatformState,
    writer: ControlRecordWriter,
    signing_secret: bytes,
    clock: Clock = system_clock,
) -> RegisteredPartner:
    """Onboard ``partner`` with a first API key; its signing key derives from the secret."""
    if partner.partner_id in state.partners():
        raise PartnerExistsError(partner.partner_id)
    writer.write("partner", partner.partner_id, partner)
    issued = issue_api_key(partner.partner_id, FIRST_KEY_LABEL, writer, clock)
    signing_key = partner_signing_key(signing_secret, partner.partner_id, partner.key_generation)
    return RegisteredPartner(partner, issued, signing_key)


def set_partner_enabled(
    partner_id: str, enabled: bool, state: PlatformState, writer: ControlRecordWriter
) -> Partner:
    """Enable or disable a partner (a disabled one neither publishes nor receives).

    Effective from the next governed event on; nothing is written when it already is
    in that state.
    """
    partner = existing_partner(state, partner_id)
    if partner.enabled != enabled:
        partner = partner.model_copy(update={"enabled": enabled})
        writer.write("partner", partner_id, partner)
    return partner


def issue_api_key(
    partner_id: str, label: str | None, writer: ControlRecordWriter, clock: Clock = system_clock
) -> IssuedKey:
    """A new API key for ``partner_id``; the caller has checked that the partner exists."""
    issued = issue_key(partner_id, clock(), label=label)
    writer.write("api_key", issued.key_id, issued.record)
    return issued


def issue_partner_key(
    partner_id: str,
    label: str | None,
    state: PlatformState,
    writer: ControlRecordWriter,
    clock: Clock = system_clock,
) -> IssuedKey:
    """Another API key for an existing partner (UnknownPartnerError otherwise)."""
    existing_partner(state, partner_id)
    return issue_api_key(partner_id, label, writer, clock)


def revoke_api_key(
    key_id: str,
    state: PlatformState,
    writer: ControlRecordWriter,
    clock: Clock = system_clock,
    partner_id: str | None = None,
) -> ApiKeyRecord:
    """Revoke a key on every API instance at once; revoking twice keeps the first time.

    With ``partner_id``, a key of another partner is as unknown as a missing one.
    """
    record = state.api_keys().get(key_id)
    if record is None or (partner_id is not None and record.partner_id != partner_id):
        raise UnknownApiKeyError(key_id, partner_id)
    record = revoked(record, clock())
    writer.write("api_key", key_id, record)
    return record


def active_key_counts(state: PlatformState) -> dict[str, int]:
    """partner id -> API keys issued to it and not revoked."""
    counts: dict[str, int] = {}
    for record in state.api_keys().values():
        if not record.revoked:
            counts[record.partner_id] = counts.get(record.partner_id, 0) + 1
    return counts
