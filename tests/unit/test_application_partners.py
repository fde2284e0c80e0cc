"""Partner and API key use cases: onboarding, enable/disable, issue and revoke."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ecoshare.application.errors import (
    PartnerExistsError,
    UnknownApiKeyError,
    UnknownPartnerError,
)
from ecoshare.application.partners import (
    FIRST_KEY_LABEL,
    active_key_counts,
    issue_partner_key,
    register_partner,
    revoke_api_key,
    set_partner_enabled,
)
from ecoshare.domain.credentials import key_matches
from ecoshare.domain.identity import partner_signing_key
from tests.unit.application_fakes import START, FakeClock, InMemoryPlatform, partner

SECRET = b"unit-test-secret"


def test_registering_writes_the_partner_and_a_first_key() -> None:
    platform, clock = InMemoryPlatform(), FakeClock()
    registered = register_partner(partner("shop"), platform, platform, SECRET, clock)
    assert [(kind, key) for kind, key, _ in platform.writes] == [
        ("partner", "shop"),
        ("api_key", registered.api_key.key_id),
    ]
    record = platform.api_keys()[registered.api_key.key_id]
    assert record.partner_id == "shop"
    assert record.label == FIRST_KEY_LABEL
    assert record.created_at == START
    assert key_matches(record, registered.api_key.api_key)
    assert registered.signing_key == partner_signing_key(SECRET, "shop", 1)


def test_registering_twice_is_refused() -> None:
    platform = InMemoryPlatform().seed(partner("shop"))
    with pytest.raises(PartnerExistsError):
        register_partner(partner("shop"), platform, platform, SECRET)
    assert platform.writes == []


def test_disable_and_enable_write_only_a_change() -> None:
    platform = InMemoryPlatform().seed(partner("shop"))
    disabled = set_partner_enabled("shop", False, platform, platform)
    assert not disabled.enabled
    assert not platform.partners()["shop"].enabled
    set_partner_enabled("shop", False, platform, platform)
    assert len(platform.writes) == 1
    assert set_partner_enabled("shop", True, platform, platform).enabled
    assert len(platform.writes) == 2


def test_enabling_an_unknown_partner_is_refused() -> None:
    platform = InMemoryPlatform()
    with pytest.raises(UnknownPartnerError):
        set_partner_enabled("ghost", True, platform, platform)


def test_a_key_is_issued_only_to_a_partner() -> None:
    platform = InMemoryPlatform().seed(partner("shop"))
    issued = issue_partner_key("shop", "ci", platform, platform, FakeClock())
    assert platform.api_keys()[issued.key_id].label == "ci"
    with pytest.raises(UnknownPartnerError):
        issue_partner_key("ghost", None, platform, platform)
    assert active_key_counts(platform) == {"shop": 1}


def test_revocation_keeps_the_first_time_and_stops_counting_the_key() -> None:
    platform, clock = InMemoryPlatform().seed(partner("shop")), FakeClock()
    issued = issue_partner_key("shop", None, platform, platform, clock)
    clock.advance(30)
    record = revoke_api_key(issued.key_id, platform, platform, clock)
    assert record.revoked_at == START + timedelta(seconds=30)
    assert platform.api_keys()[issued.key_id].revoked
    clock.advance(30)
    again = revoke_api_key(issued.key_id, platform, platform, clock)
    assert again.revoked_at == START + timedelta(seconds=30)
    assert active_key_counts(platform) == {}


def test_a_key_of_another_partner_is_as_unknown_as_a_missing_one() -> None:
    platform = InMemoryPlatform().seed(partner("shop"), partner("maps"))
    issued = issue_partner_key("shop", None, platform, platform)
    with pytest.raises(UnknownApiKeyError) as refused:
        revoke_api_key(issued.key_id, platform, platform, partner_id="maps")
    assert str(refused.value) == f"partner 'maps' has no API key {issued.key_id!r}"
    assert not platform.api_keys()[issued.key_id].revoked
    with pytest.raises(UnknownApiKeyError, match="no API key 'feedfeedfeed'"):
        revoke_api_key("feedfeedfeed", platform, platform)
