"""Who is calling: the operator key, or one partner's API key.

The operator key (``secrets.operator_key``) acts for the whole ecosystem. A partner key
acts for its partner only: resources of another partner answer 403. No key, an unknown,
wrong or revoked key answer 401; a disabled partner's keys answer 403. Every verified
key is charged against its own rate limit (429 with ``Retry-After``).

Failed authentications are charged against the client address: once an address has
spent its budget of failures, its requests answer 429 before any key is looked at, so
guessing keys costs the platform no hashing and no broker round trip. A key id nobody
issued is refused without scrypt; the one look-up that checks whether it was issued a
moment ago elsewhere is shared by concurrent requests.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ecoshare.adapters.kafka.control_records import CompactedState
from ecoshare.adapters.kafka.follower import TopicFollower
from ecoshare.api.errors import ApiError
from ecoshare.api.limits import RequestRateLimiter, retry_after_header
from ecoshare.domain.credentials import ApiKeyRecord, key_id_of, key_matches
from ecoshare.domain.partners import Partner

_BEARER = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ecoshare"'}


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller: the operator, or a partner (``partner_id``) by key ``key_id``."""

    operator: bool
    partner_id: str | None = None
    key_id: str | None = None

    @property
    def name(self) -> str:
        return "operator" if self.operator else f"partner {self.partner_id}"

    def may_act_for(self, partner_id: str) -> bool:
        return self.operator or self.partner_id == partner_id

    def require(self, partner_id: str) -> None:
        """403 unless the caller is the operator or ``partner_id`` itself."""
        if not self.may_act_for(partner_id):
            raise ApiError(
                403, f"the key of {self.name} may not access the resources of partner {partner_id}"
            )

    def require_operator(self) -> None:
        if not self.operator:
            raise ApiError(403, "this operation needs the operator key")


class Authenticator:
    """Verifies presented keys against the operator key and the followed key records."""

    def __init__(
        self,
        *,
        operator_key: str,
        state: CompactedState,
        follower: TopicFollower,
        keys_topic: str,
        partners_topic: str,
        partner_limiter: RequestRateLimiter,
        operator_limiter: RequestRateLimiter,
        failure_limiter: RequestRateLimiter,
    ) -> None:
        self._operator_key = operator_key.encode()
        self._state = state
        self._follower = follower
        self._keys_topic = keys_topic
        self._partners_topic = partners_topic
        self._partner_limiter = partner_limiter
        self._operator_limiter = operator_limiter
        self._failure_limiter = failure_limiter
        self._catch_up_lock = threading.Lock()
        self._last_catch_up_started = float("-inf")
        # key id -> sha256 of the key that passed scrypt once; spares scrypt per request.
        self._verified: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def authenticate(self, presented: str | None, client_address: str = "unknown") -> Caller:
        """The caller a presented key stands for; ApiError 401/403/429 otherwise."""
        wait = self._failure_limiter.wait_time(client_address)
        if wait is not None:
            raise self._too_many_failures(wait)
        try:
            return self._verify(presented)
        except ApiError as exc:
            if exc.status == 401:
                wait = self._failure_limiter.acquire(client_address)
                if wait is not None:
                    raise self._too_many_failures(wait) from None
            raise

    @staticmethod
    def _too_many_failures(wait: float) -> ApiError:
        return ApiError(
            429,
            "too many failed authentications from this address; retry later",
            headers={"Retry-After": retry_after_header(wait)},
        )

    def revocation_of(self, caller: Caller) -> str | None:
        """Why a verified caller may no longer act (its key revoked, its partner disabled).

        None while it still may. Cheap: two look-ups in the followed state.
        """
        if caller.operator or caller.key_id is None:
            return None
        key: ApiKeyRecord | None = self._state.model(self._keys_topic, caller.key_id)
        if key is None or key.revoked:
            return f"the API key {caller.key_id} has been revoked"
        partner: Partner | None = self._state.model(self._partners_topic, caller.partner_id or "")
        if partner is None or not partner.enabled:
            return f"partner {caller.partner_id!r} is disabled"
        return None

    def _verify(self, presented: str | None) -> Caller:
        if not presented:
            raise ApiError(
                401,
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key`",
                headers=_CHALLENGE,
            )
        if hmac.compare_digest(presented.encode(), self._operator_key):
            self._charge(self._operator_limiter, "operator")
            return Caller(operator=True)
        record = self._record(presented)
        if record is None or not self._matches(record, presented):
            raise ApiError(401, "the API key is not valid", headers=_CHALLENGE)
        if record.revoked:
            raise ApiError(401, f"the API key {record.key_id} has been revoked", headers=_CHALLENGE)
        partner: Partner | None = self._state.model(self._partners_topic, record.partner_id)
        if partner is None:
            raise ApiError(
                403,
                f"partner {record.partner_id!r} is not known to the platform",
                code="partner_unknown",
            )
        if not partner.enabled:
            raise ApiError(
                403, f"partner {record.partner_id!r} is disabled", code="partner_disabled"
            )
        self._charge(self._partner_limiter, record.key_id)
        return Caller(operator=False, partner_id=record.partner_id, key_id=record.key_id)

    def _record(self, presented: str) -> ApiKeyRecord | None:
        key_id = key_id_of(presented)
        if key_id is None:
            return None
        found: ApiKeyRecord | None = self._state.model(self._keys_topic, key_id)
        if found is None:
            # Issued a moment ago by the CLI or another API instance: catch up once.
            self._catch_up(since=time.monotonic())
            found = self._state.model(self._keys_topic, key_id)
        return found

    def _catch_up(self, since: float) -> None:
        """Catch the key records up, unless a catch-up started after ``since`` already did."""
        with self._catch_up_lock:
            if self._last_catch_up_started >= since:
                return
            self._last_catch_up_started = time.monotonic()
            self._follower.catch_up(3.0)

    def _matches(self, record: ApiKeyRecord, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        with self._lock:
            cached = self._verified.get(record.key_id)
        if cached is not None:
            return hmac.compare_digest(cached, digest)
        if not key_matches(record, presented):
            return False
        with self._lock:
            self._verified[record.key_id] = digest
        return True

    @staticmethod
    def _charge(limiter: RequestRateLimiter, key: str) -> None:
        wait = limiter.acquire(key)
        if wait is not None:
            raise ApiError(
                429,
                "rate limit of this key exceeded; retry later",
                headers={"Retry-After": retry_after_header(wait)},
            )


def current_caller(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(_BEARER),
    header: str | None = Security(_HEADER),
) -> Caller:
    """FastAPI dependency: the verified caller of this request."""
    presented = bearer.credentials if bearer is not None else header
    authenticator: Authenticator = request.app.state.context.auth
    client = request.client.host if request.client is not None else "unknown"
    return authenticator.authenticate(presented, client)
