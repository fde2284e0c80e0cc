"""Consent use cases: the one withdrawal rule the API and the CLI share."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ecoshare.application.consent import NewConsent, consent_record, grant_consent, withdraw_consent
from ecoshare.application.errors import (
    ConsentOfAnotherControllerError,
    InvalidConsentError,
    UnknownConsentError,
    UnknownControllerError,
)
from ecoshare.domain.consent import ConsentRecord
from tests.unit.application_fakes import START, FakeClock, InMemoryPlatform, partner


def _grant(**changes: object) -> NewConsent:
    fields: dict[str, object] = {
        "subject": "customer-7",
        "controller": "shop",
        "grantee": "maps",
        "purpose": "delivery",
        "scope": ["contact_phone"],
        "consent_id": "c-1",
    }
    fields.update(changes)
    return NewConsent(**fields)  # type: ignore[arg-type]


def _platform() -> InMemoryPlatform:
    return InMemoryPlatform().seed(partner("shop"), partner("bakery"), partner("maps"))


def test_grant_writes_the_consent_given_now() -> None:
    platform, clock = _platform(), FakeClock()
    consent = grant_consent(_grant(), platform, platform, clock)
    assert consent.given_at == START
    assert consent.scope == frozenset({"contact_phone"})
    assert platform.writes == [("consent", "c-1", consent)]


def test_grant_draws_an_id_when_none_is_given() -> None:
    platform = _platform()
    first = grant_consent(_grant(consent_id=None), platform, platform, FakeClock())
    second = grant_consent(_grant(consent_id=None), platform, platform, FakeClock())
    assert first.consent_id != second.consent_id
    assert set(platform.consents()) == {first.consent_id, second.consent_id}


def test_grant_refuses_a_controller_that_is_no_partner() -> None:
    platform = _platform()
    with pytest.raises(UnknownControllerError) as refused:
        grant_consent(_grant(controller="stranger"), platform, platform, FakeClock())
    assert refused.value.controller == "stranger"
    assert platform.writes == []


def test_a_consent_id_stays_with_its_controller() -> None:
    platform = _platform()
    grant_consent(_grant(), platform, platform, FakeClock())
    with pytest.raises(ConsentOfAnotherControllerError):
        grant_consent(_grant(controller="bakery"), platform, platform, FakeClock())
    # Its own controller may replace it.
    replaced = grant_consent(_grant(purpose="billing"), platform, platform, FakeClock())
    assert platform.consents()["c-1"] == replaced
    assert replaced.purpose == "billing"


def test_an_invalid_consent_names_its_fields_and_writes_nothing() -> None:
    platform, clock = _platform(), FakeClock()
    grant = _grant(scope=[], expires_at=START - timedelta(days=1))
    with pytest.raises(InvalidConsentError) as refused:
        grant_consent(grant, platform, platform, clock)
    assert "scope" in {problem.field for problem in refused.value.problems}
    assert platform.writes == []
    with pytest.raises(InvalidConsentError):
        consent_record(grant, clock)


def test_withdrawal_is_now_and_enforced_once() -> None:
    platform, clock = _platform(), FakeClock()
    grant_consent(_grant(), platform, platform, clock)
    clock.advance(60)
    withdrawn = withdraw_consent("c-1", platform, platform, clock)
    assert withdrawn.withdrawn_at == START + timedelta(seconds=60)
    assert platform.consents()["c-1"].withdrawn_at == withdrawn.withdrawn_at
    clock.advance(60)
    again = withdraw_consent("c-1", platform, platform, clock)
    # The first withdrawal stands and nothing more is written.
    assert again.withdrawn_at == START + timedelta(seconds=60)
    assert len(platform.writes) == 2


def test_withdrawal_is_never_before_the_consent_was_given() -> None:
    given = START + timedelta(hours=1)  # a publisher clock ahead of ours
    platform = _platform().seed(
        ConsentRecord(
            consent_id="c-2",
            subject="customer-7",
            controller="shop",
            grantee="*",
            purpose="delivery",
            scope=frozenset({"personal"}),
            given_at=given,
        )
    )
    withdrawn = withdraw_consent("c-2", platform, platform, FakeClock())
    assert withdrawn.withdrawn_at == given


def test_withdrawing_an_unknown_consent_is_refused() -> None:
    platform = _platform()
    with pytest.raises(UnknownConsentError) as refused:
        withdraw_consent("nope", platform, platform, FakeClock())
    assert refused.value.consent_id == "nope"


def test_authorize_sees_the_consent_before_anything_is_written() -> None:
    platform = _platform()
    grant_consent(_grant(), platform, platform, FakeClock())

    class NotYoursError(Exception):
        pass

    def refuse(consent: ConsentRecord) -> None:
        assert consent.controller == "shop"
        raise NotYoursError

    with pytest.raises(NotYoursError):
        withdraw_consent("c-1", platform, platform, FakeClock(), authorize=refuse)
    assert platform.consents()["c-1"].withdrawn_at is None
