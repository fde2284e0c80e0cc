"""The franchise owners' consents, and the one the demo withdraws live."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ecoshare.demo.locations import Location
from ecoshare.demo.reference import (
    CARRIER_NORTH_ID,
    CONSENT_PURPOSE,
    CONSENTED_FIELDS,
    HOUR_MS,
    MINUTE_MS,
    ConsentRecordData,
    carrier_for_postcode,
    epoch_millis,
)


@dataclass(frozen=True, slots=True)
class ScenarioConsents:
    """Consent records of franchise owners, and the one to withdraw live in the demo.

    Each record grants the carrier covering the owner's shop the owner's contact name
    and phone (``scope``) for the purpose "parcel-delivery"; timestamps are epoch
    milliseconds. The records are shared dicts: copy before changing one.
    """

    records: tuple[ConsentRecordData, ...]
    consent_id_to_withdraw: str

    def consent_to_withdraw(self) -> ConsentRecordData:
        """A copy of the consent the demo withdraws: a carrier-north grant, preferably of
        an Amsterdam shop owner, whose shop publishes again after the lockdown announcement."""
        for record in self.records:
            if record["consent_id"] == self.consent_id_to_withdraw:
                return dict(record)
        raise LookupError(self.consent_id_to_withdraw)

    def withdrawal(self, withdrawn_at: datetime) -> ConsentRecordData:
        """The consent to withdraw, as its record looks once withdrawn at ``withdrawn_at``."""
        record = self.consent_to_withdraw()
        record["withdrawn_at"] = epoch_millis(withdrawn_at)
        return record


def generate_consents(
    locations: Sequence[Location], start: datetime, seed: int, consenting_share: float = 0.7
) -> ScenarioConsents:
    """Consents given before ``start`` by about ``consenting_share`` of the franchise owners.

    At least one owner consents. None of the consents is withdrawn or expired at
    ``start``; two in three expire two years after they were given, the rest never.
    """
    rng = random.Random(seed)
    start_ms = epoch_millis(start)
    owners = sorted(
        (location for location in locations if location.contact_subject_id is not None),
        key=lambda location: location.location_id,
    )
    if not owners:
        raise ValueError("the locations include no franchise shop with an owner to consent")
    consenting = [owner for owner in owners if rng.random() < consenting_share] or owners[:1]

    records: list[ConsentRecordData] = []
    withdraw_candidates: list[tuple[bool, bool, int, str]] = []
    for owner in consenting:
        given_ms = start_ms - rng.randint(7 * 24 * 60, 400 * 24 * 60) * MINUTE_MS
        expires_ms = given_ms + 730 * 24 * HOUR_MS if rng.random() < 2 / 3 else None
        grantee = carrier_for_postcode(owner.postal_code)
        consent_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        records.append(
            {
                "consent_id": consent_id,
                "subject": owner.contact_subject_id,
                "controller": owner.publisher_id,
                "grantee": grantee,
                "purpose": CONSENT_PURPOSE,
                "scope": list(CONSENTED_FIELDS),
                "given_at": given_ms,
                "expires_at": expires_ms,
                "withdrawn_at": None,
            }
        )
        withdraw_candidates.append(
            (
                grantee != CARRIER_NORTH_ID,
                owner.city != "Amsterdam",
                int(owner.location_id.rsplit("-", 1)[1]),
                consent_id,
            )
        )
    return ScenarioConsents(
        records=tuple(records), consent_id_to_withdraw=min(withdraw_candidates)[3]
    )
