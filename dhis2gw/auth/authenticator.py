"""Who is calling: Bearer JWT, Basic and ``Token`` API-token authentication.

The router calls ``authenticate(request)`` for every non-public route. Speed matters here (it
runs on every request), so:

* a user's auth state (active flag, role, token epoch) is cached for ``user_cache_seconds``;
  anything in this process that changes a user calls ``invalidate_user`` so revocation is
  immediate here (other API processes see it within ``user_cache_seconds``);
* verified Basic credentials are cached for ``basic_cache_seconds`` under an HMAC of the
  credentials (the password itself is never kept), together with the token epoch they were
  verified at, so a password change or deactivation voids the entry;
* API tokens are looked up by their SHA-256 hash and cached briefly the same way;
* the claims of access JWTs whose signature was already checked are remembered for a minute
  (expiry and the epoch are still checked on every request).

Failed Basic logins and ``getToken`` logins share one ``LoginThrottle``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from dhis2gw.auth.passwords import PasswordHasher
from dhis2gw.auth.principal import Principal
from dhis2gw.auth.throttle import LoginThrottle, RedisLoginThrottle
from dhis2gw.auth.tokens import JwtIssuer, auth_error, hash_api_token
from dhis2gw.errors import ApiError
from dhis2gw.storage.users import TokenStore, UserStore

STATE_FIELDS = ("id", "uid", "username", "role", "source_name", "is_active", "token_epoch", "callback_allowed",
                "orgunit_scope", "dataset_scope", "may_delete")


def client_address(request: IRequest) -> str | None:
    """The client's IP address (the key of per-address throttling, and what the request log records).

    A ``GatewayRequest`` knows it (``client_ip``: the peer, or the address a trusted reverse proxy
    forwarded); other requests give their peer address.
    """
    known = getattr(request, "client_ip", None)
    if isinstance(known, str):
        return known
    try:
        return getattr(request.getClientAddress(), "host", None)
    except Exception:  # noqa: BLE001 - odd transports have no address
        return None


@dataclass
class _Cached:
    value: Any
    until: float


class GatewayAuthenticator:
    """The ``Authenticator`` of the API router (see module docstring).

    :param clock: the injected clock (cache ages, token expiry).
    :param users, tokens: the stores.
    :param hasher: argon2 hasher (runs in threads).
    :param issuer: JWT signer/checker.
    :param throttle: the login budget (``dhis2gw.auth.throttle``).
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, users: UserStore, tokens: TokenStore, hasher: PasswordHasher,
                 issuer: JwtIssuer, throttle: LoginThrottle | RedisLoginThrottle, basic_cache_seconds: float = 60,
                 user_cache_seconds: float = 2.0, api_token_cache_seconds: float = 5.0,
                 max_cache_entries: int = 10_000) -> None:
        self.clock = clock
        self.users = users
        self.tokens = tokens
        self.hasher = hasher
        self.issuer = issuer
        self.throttle = throttle
        self.basic_cache_seconds = basic_cache_seconds
        self.user_cache_seconds = user_cache_seconds
        self.api_token_cache_seconds = api_token_cache_seconds
        self.max_cache_entries = max_cache_entries
        self._cache_key = secrets.token_bytes(32)  # per process: cache keys mean nothing elsewhere
        self._user_states: dict[str, _Cached] = {}
        self._basic: dict[bytes, _Cached] = {}
        self._api_tokens: dict[str, _Cached] = {}
        self._access_claims: dict[str, _Cached] = {}
        # Basic verifications in progress: concurrent requests with the same credentials wait
        # for the one KDF run instead of each starting their own (a cold-cache stampede).
        self._basic_flights: dict[bytes, list[defer.Deferred[Principal]]] = {}

    # --- the Authenticator protocol --------------------------------------------------
    async def authenticate(self, request: IRequest) -> Principal:
        """Return the caller's Principal or raise a 401 (or 429 for a locked-out Basic login)."""
        raw = request.getHeader(b"authorization")
        if not raw:
            raise auth_error("unauthenticated", "authentication is required")
        try:
            header = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            raise auth_error("unauthenticated", "the Authorization header is malformed") from None
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if not credential or " " in credential:
            raise auth_error("unauthenticated", "the Authorization header is malformed")
        scheme = scheme.lower()
        if scheme == "bearer":
            return await self._bearer(credential)
        if scheme == "basic":
            return await self._basic_auth(credential, client_address(request))
        if scheme == "token":
            return await self._api_token(credential)
        raise auth_error("unauthenticated", "unsupported authorization scheme; use Bearer, Basic or Token")

    # --- user state ----------------------------------------------------------------
    async def user_state(self, uid: str) -> dict[str, Any] | None:
        """The user's auth state (cached briefly), or None when there is no such user."""
        now = self.clock.seconds()
        hit = self._user_states.get(uid)
        if hit is not None and hit.until > now:
            return hit.value  # type: ignore[no-any-return]
        row = await self.users.get(uid)
        state = {k: row[k] for k in STATE_FIELDS} if row else None
        self._remember(self._user_states, uid, state, now + self.user_cache_seconds)
        return state

    def invalidate_user(self, uid: str) -> None:
        """Forget everything cached about ``uid`` (call after any change to the user)."""
        self._user_states.pop(uid, None)
        for key in [k for k, v in self._basic.items() if v.value[0] == uid]:
            del self._basic[key]
        for token_key in [k for k, v in self._api_tokens.items() if v.value["uid"] == uid]:
            del self._api_tokens[token_key]

    def forget_api_tokens(self) -> None:
        """Drop the API-token cache (after a token is revoked)."""
        self._api_tokens.clear()

    def _remember(self, cache: dict[Any, _Cached], key: Any, value: Any, until: float) -> None:
        if len(cache) >= self.max_cache_entries:
            now = self.clock.seconds()
            for k in [k for k, v in cache.items() if v.until <= now]:
                del cache[k]
            while len(cache) >= self.max_cache_entries:
                del cache[next(iter(cache))]
        cache[key] = _Cached(value, until)

    @staticmethod
    def _principal(state: dict[str, Any], method: str) -> Principal:
        return Principal(user_id=state["id"], uid=state["uid"], username=state["username"], role=state["role"],
                         source_name=state.get("source_name"), method=method,
                         callback_allowed=bool(state.get("callback_allowed")),
                         orgunit_scope=tuple(state.get("orgunit_scope") or ()),
                         dataset_scope=tuple(state.get("dataset_scope") or ()),
                         may_delete=bool(state.get("may_delete")))

    # --- schemes -------------------------------------------------------------------
    async def _bearer(self, token: str) -> Principal:
        # A JWT's signature check is deterministic: remember the claims of tokens already checked
        # (keyed by the exact token) so the hot path skips PyJWT. Expiry and revocation are still
        # checked on every request.
        now = self.clock.seconds()
        hit = self._access_claims.get(token)
        if hit is not None and hit.until > now:
            claims = hit.value
            if claims["exp"] <= now:
                raise auth_error("token_expired", "the token has expired")
        else:
            claims = self.issuer.decode(token, "access")
            self._remember(self._access_claims, token, claims, now + 60.0)
        state = await self.user_state(str(claims["sub"]))
        if state is None or not state["is_active"] or state["token_epoch"] != claims["ep"]:
            raise auth_error("invalid_token", "the token has been revoked")
        return self._principal(state, "bearer")

    async def _basic_auth(self, credential: str, address: str | None) -> Principal:
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise auth_error("unauthenticated", "the Basic credentials are malformed") from None
        username, colon, password = decoded.partition(":")
        if not colon or not username:
            raise auth_error("unauthenticated", "the Basic credentials are malformed")
        key = hmac.new(self._cache_key, decoded.encode("utf-8"), hashlib.sha256).digest()
        now = self.clock.seconds()
        hit = self._basic.get(key)
        if hit is not None and hit.until > now:
            uid, epoch = hit.value
            state = await self.user_state(uid)
            if state is not None and state["is_active"] and state["token_epoch"] == epoch:
                return self._principal(state, "basic")
            del self._basic[key]
        waiter: defer.Deferred[Principal] = defer.Deferred()
        waiters = self._basic_flights.get(key)
        if waiters is not None:
            waiters.append(waiter)
        else:
            self._basic_flights[key] = [waiter]  # registered first: the flight may end synchronously
            defer.Deferred.fromCoroutine(self._verify_basic(key, username, password, address))
        return await waiter

    async def _verify_basic(self, key: bytes, username: str, password: str, address: str | None) -> None:
        """Verify once for every waiter on ``key``; never raises (each waiter gets the outcome)."""
        try:
            user = await self.verify_login(username, password, address)
            self._remember(self._basic, key, (user["uid"], user["token_epoch"]),
                           self.clock.seconds() + self.basic_cache_seconds)
            outcome: Any = self._principal(user, "basic")
        except BaseException:  # noqa: BLE001 - handed to the waiters, who raise it
            outcome = Failure()
        for waiter in self._basic_flights.pop(key, []):
            if waiter.called:  # its request was cancelled (client went away)
                continue
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    async def _api_token(self, token: str) -> Principal:
        token_hash = hash_api_token(token)
        now = self.clock.seconds()
        hit = self._api_tokens.get(token_hash)
        if hit is not None and hit.until > now:
            entry = hit.value
            state = await self.user_state(entry["uid"])
            expired = entry["token_expires"] is not None and entry["token_expires"] <= now
            if state is not None and state["is_active"] and not expired:
                return self._principal(state, "token")
            del self._api_tokens[token_hash]
            raise auth_error("invalid_token", "the API token is not valid")
        row = await self.tokens.use_api_token(token_hash, now)
        if row is None or not row["is_active"]:
            raise auth_error("invalid_token", "the API token is not valid")
        self._remember(self._api_tokens, token_hash, {"uid": row["uid"], "token_expires": row["token_expires"]},
                       now + self.api_token_cache_seconds)
        return self._principal(row, "token")

    # --- password logins -----------------------------------------------------------
    async def verify_login(self, username: str, password: str, address: str | None) -> dict[str, Any]:
        """Check a username/password (throttled); return the user row without its hash.

        Every failure is the same 401 ``invalid_credentials`` whether the user is unknown,
        inactive or the password wrong, and takes the same time (a dummy hash is verified).
        """
        await self.throttle.take(username, address)  # before verifying: concurrent guesses share the budget
        row = await self.users.credentials(username)
        ok = await self.hasher.verify(row["password_hash"] if row else None, password)
        if not ok or row is None or not row["is_active"]:
            from dhis2gw.logtext import printable

            self.log.info("Failed login for {username} from {address}", username=printable(username, 150),
                          address=address)
            raise ApiError(401, "invalid_credentials", "invalid username or password",
                           headers={"WWW-Authenticate": 'Basic realm="dhis2gw", charset="UTF-8"'})
        await self.throttle.succeeded(username, address)
        encoded = row.pop("password_hash")
        if self.hasher.needs_rehash(encoded):
            await self.users.replace_hash(row["id"], await self.hasher.hash(password))
        return row
