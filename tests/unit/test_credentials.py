"""API keys: issued once, kept as salted scrypt hashes, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ecoshare.config.topics import TopicNames, api_keys_topic
from ecoshare.domain import credentials
from ecoshare.domain.credentials import (
    ApiKeyRecord,
    issue_key,
    key_id_of,
    key_matches,
    revoked,
)

NOW = datetime(2020, 3, 16, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def issued() -> credentials.IssuedKey:
    return issue_key("carrier-north", NOW, label="ops laptop")


def test_an_issued_key_reads_prefix_key_id_and_secret(issued: credentials.IssuedKey) -> None:
    prefix, key_id, secret = issued.api_key.split("_", 2)
    assert prefix == "esk"
    assert key_id == issued.key_id == issued.record.key_id
    assert len(key_id) == 12
    assert len(secret) >= 40  # 32 random bytes, URL-safe base64
    record = issued.record
    assert record.partner_id == "carrier-north"
    assert record.created_at == NOW
    assert record.label == "ops laptop"
    assert not record.revoked


def test_the_record_holds_no_copy_of_the_secret(issued: credentials.IssuedKey) -> None:
    secret = issued.api_key.split("_", 2)[2]
    stored = issued.record.model_dump_json()
    assert secret not in stored
    assert issued.api_key not in stored
    # What is stored is scrypt(secret, salt) with the parameters the algorithm names.
    expected = hashlib.scrypt(
        secret.encode(), salt=bytes.fromhex(issued.record.salt), n=2**14, r=8, p=1, dklen=32
    )
    assert issued.record.hash == expected.hex()
    assert issued.record.algorithm == "scrypt-n16384-r8-p1"


def test_two_keys_differ_in_id_secret_and_salt() -> None:
    first, second = issue_key("shop-a", NOW), issue_key("shop-a", NOW)
    assert first.key_id != second.key_id
    assert first.api_key.split("_", 2)[2] != second.api_key.split("_", 2)[2]
    assert first.record.salt != second.record.salt


def test_the_issued_key_matches_its_record(issued: credentials.IssuedKey) -> None:
    assert key_matches(issued.record, issued.api_key)


def test_a_changed_secret_does_not_match(issued: credentials.IssuedKey) -> None:
    api_key = issued.api_key
    flipped = api_key[:-1] + ("A" if api_key[-1] != "A" else "B")
    assert not key_matches(issued.record, flipped)
    assert not key_matches(issued.record, api_key + "x")


def test_a_key_of_another_record_does_not_match(issued: credentials.IssuedKey) -> None:
    other = issue_key("carrier-north", NOW)
    assert not key_matches(issued.record, other.api_key)
    # Same secret presented under the other key id: the id check refuses it first.
    secret = issued.api_key.split("_", 2)[2]
    assert not key_matches(other.record, f"esk_{other.key_id}_{secret}")


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "esk",
        "esk_",
        "esk__",
        "esk_0123456789ab_",  # no secret
        "esk_0123456789ab",  # no secret part at all
        "esx_0123456789ab_secret",  # another prefix
        "ESK_0123456789ab_secret",
        "esk_0123456789AB_secret",  # key ids are lower-case hex
        "esk_0123456789a_secret",  # 11 characters
        "esk_0123456789abc_secret",  # 13 characters
        "esk_0123456789zz_secret",
        "Bearer esk_0123456789ab_secret",
    ],
)
def test_a_malformed_key_has_no_key_id(presented: str) -> None:
    assert key_id_of(presented) is None


def test_a_well_formed_key_names_its_key_id_and_the_secret_may_hold_underscores() -> None:
    assert key_id_of("esk_0123456789ab_se_cr_et") == "0123456789ab"


def test_a_malformed_key_is_refused_without_hashing(
    issued: credentials.IssuedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_scrypt(secret: str, salt: bytes) -> bytes:
        raise AssertionError("a malformed key must not cost an scrypt evaluation")

    monkeypatch.setattr(credentials, "_scrypt", no_scrypt)
    assert not key_matches(issued.record, "esk_nothex_secret")
    assert not key_matches(issued.record, f"esk_{issued.key_id}_")


def test_the_comparison_is_constant_time(
    issued: credentials.IssuedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def recording(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert key_matches(issued.record, issued.api_key)
    assert not key_matches(issued.record, issued.api_key[:-2] + "zz")
    assert len(compared) == 2
    assert all(stored == issued.record.hash for _, stored in compared)


def test_revoking_stamps_the_time_once(issued: credentials.IssuedKey) -> None:
    later = NOW + timedelta(hours=1)
    gone = revoked(issued.record, later)
    assert gone.revoked
    assert gone.revoked_at == later
    assert revoked(gone, later + timedelta(days=1)) is gone  # unchanged when revoked
    assert not issued.record.revoked  # records are immutable
    # A revoked record still matches its key: refusing it is the caller's rule.
    assert key_matches(gone, issued.api_key)


def test_the_public_view_has_neither_salt_nor_hash(issued: credentials.IssuedKey) -> None:
    view = issued.record.public_view()
    assert set(view) == {"key_id", "partner_id", "created_at", "revoked_at", "label"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key_id", "0123456789AB"),
        ("salt", "00" * 15),
        ("hash", "zz" * 32),
        ("algorithm", "md5"),
        ("unexpected", "x"),
    ],
)
def test_a_malformed_record_is_refused(
    issued: credentials.IssuedKey, field: str, value: str
) -> None:
    data = {**issued.record.model_dump(mode="json"), field: value}
    with pytest.raises(ValidationError, match=field):
        ApiKeyRecord.model_validate(data)


def test_the_keys_topic_carries_the_prefix() -> None:
    assert api_keys_topic(TopicNames(prefix="t1.")) == "t1.ecoshare.api-keys"


@given(st.text(max_size=40))
def test_key_id_of_never_raises_and_only_accepts_the_shape(presented: str) -> None:
    key_id = key_id_of(presented)
    if key_id is not None:
        assert presented.startswith(f"esk_{key_id}_")
        assert len(presented) > len(f"esk_{key_id}_")
        assert set(key_id) <= set("0123456789abcdef")
        assert len(key_id) == 12
