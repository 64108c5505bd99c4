"""Token sessions: ``getToken`` (password → access + refresh JWT) and ``refreshToken`` (rotation).

Each login starts a refresh-token *family*. Refreshing spends the presented token and issues
its successor in the same family; presenting a spent token again means it was copied, so the
whole family is revoked and the holder must log in again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from dhis2gw.auth.authenticator import GatewayAuthenticator
from dhis2gw.auth.passwords import PasswordHasher, PasswordPolicy
from dhis2gw.auth.throttle import LoginThrottle, RedisLoginThrottle
from dhis2gw.auth.tokens import IssuedToken, JwtIssuer, auth_error
from dhis2gw.storage.database import Database
from dhis2gw.storage.users import TokenStore, UserStore


class SessionIssuer:
    """Logs users in and rotates their refresh tokens."""

    log = Logger()

    def __init__(self, clock: IReactorTime, users: UserStore, tokens: TokenStore, issuer: JwtIssuer,
                 authenticator: GatewayAuthenticator) -> None:
        self.clock = clock
        self.users = users
        self.tokens = tokens
        self.issuer = issuer
        self.authenticator = authenticator

    def _pair(self, access: IssuedToken, refresh: IssuedToken) -> dict[str, Any]:
        return {"access_token": access.token, "refresh_token": refresh.token, "token_type": "Bearer",
                "expires_in": self.issuer.access_ttl, "refresh_expires_in": self.issuer.refresh_ttl}

    async def login(self, username: str, password: str, address: str | None) -> dict[str, Any]:
        """Verify the password (throttled) and issue a new token pair."""
        user = await self.authenticator.verify_login(username, password, address)
        return await self.login_verified(user)

    async def login_verified(self, user: dict[str, Any]) -> dict[str, Any]:
        """Issue a new token pair for a user whose credentials were already checked."""
        now = self.clock.seconds()
        access = self.issuer.issue_access(user, now)
        refresh = self.issuer.issue_refresh(user, now=now)
        await self.tokens.add_refresh(refresh.jti, refresh.claims["fam"], user["id"], now, refresh.expires_at)
        await self.users.record_login(user["id"])
        self.authenticator.invalidate_user(user["uid"])  # last_login_at changed
        return self._pair(access, refresh)

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """Spend ``refresh_token`` and issue its successor (see module docstring)."""
        claims = self.issuer.decode(refresh_token, "refresh")
        state = await self.authenticator.user_state(str(claims["sub"]))
        if state is None or not state["is_active"] or state["token_epoch"] != claims["ep"]:
            raise auth_error("invalid_token", "the refresh token has been revoked")
        now = self.clock.seconds()
        refresh = self.issuer.issue_refresh(state, family=str(claims.get("fam")), now=now)
        outcome = await self.tokens.rotate_refresh(str(claims["jti"]), state["id"], refresh.jti, now,
                                                   refresh.expires_at)
        if outcome == "reused":
            # A stolen refresh token was used (by the thief or the owner): the access tokens issued
            # from this family are as suspect as the family itself. They cannot be told apart from the
            # user's other sessions, so every JWT of the user ends now (issue 16, F16); API tokens stay.
            await self.users.end_access_tokens(state["id"])
            self.authenticator.invalidate_user(state["uid"])
            self.log.warn("Refresh token reuse for user {uid}: session family revoked, access tokens ended",
                          uid=state["uid"])
            raise auth_error("invalid_token", "the refresh token was already used; the session is revoked")
        if outcome != "ok":
            raise auth_error("invalid_token", "the refresh token is not valid")
        return self._pair(self.issuer.issue_access(state, now), refresh)


@dataclass
class AuthServices:
    """Everything authentication needs, built once by the composition root (``build_auth``)."""

    users: UserStore
    tokens: TokenStore
    hasher: PasswordHasher
    policy: PasswordPolicy
    issuer: JwtIssuer
    throttle: Any  # LoginThrottle or RedisLoginThrottle
    authenticator: GatewayAuthenticator
    sessions: SessionIssuer


def build_auth(reactor: Any, db: Database, auth_config: Any, hasher: PasswordHasher | None = None,
               clock: IReactorTime | None = None, redis: Any = None, redis_prefix: str = "dhis2gw"
               ) -> AuthServices:
    """Wire the auth objects from ``config.auth``.

    :param reactor: must provide IReactorThreads (argon2 runs in its thread pool) and time.
    :param hasher: a prebuilt hasher (tests pass cheap argon2 parameters).
    :param clock: time source for tokens, caches and throttling (defaults to ``reactor``).
    :param redis: ``RedisConnections``: the login budget is then shared by every process.
    """
    clock = clock or reactor
    users, tokens = UserStore(db), TokenStore(db)
    hasher = hasher or PasswordHasher(reactor)
    issuer = JwtIssuer(clock, auth_config.jwt_secret, auth_config.jwt_issuer, auth_config.access_token_ttl,
                       auth_config.refresh_token_ttl)
    throttle: Any = LoginThrottle(clock, auth_config.login_max_failures, auth_config.login_lockout_seconds,
                                  lockout_max_seconds=getattr(auth_config, "login_lockout_max_seconds", 3600))
    if redis is not None:
        throttle = RedisLoginThrottle(redis, clock, redis_prefix, throttle,
                                      timeout=max(2.0, float(getattr(redis, "timeout", 2.0))))
    authenticator = GatewayAuthenticator(clock, users, tokens, hasher, issuer, throttle,
                                         basic_cache_seconds=auth_config.basic_auth_cache_seconds)
    sessions = SessionIssuer(clock, users, tokens, issuer, authenticator)
    return AuthServices(users, tokens, hasher, PasswordPolicy(auth_config.password_min_length), issuer, throttle,
                        authenticator, sessions)

