"""Access and refresh JWTs (HS256) and opaque API tokens.

Time comes from the injected clock, not from PyJWT (which reads the wall clock), so tests
drive expiry with ``task.Clock``. Every JWT carries ``ep``, the user's ``token_epoch`` when it
was issued: a password change or a deactivation bumps the epoch and every earlier token stops
working at once. API tokens are random, shown once, and stored only as a SHA-256 hash (a hash
of 256 random bits needs no slow KDF).
"""
from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from twisted.internet.interfaces import IReactorTime

from dhis2gw.errors import ApiError

ALGORITHM = "HS256"
API_TOKEN_PREFIX = "dgw_"
_CHALLENGE = 'Bearer realm="dhis2gw"'


def auth_error(code: str, message: str) -> ApiError:
    """A 401 with the JSON envelope and a ``WWW-Authenticate`` challenge."""
    challenge = _CHALLENGE
    if code in ("invalid_token", "token_expired"):
        challenge += f', error="invalid_token", error_description="{message}"'
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True)
class IssuedToken:
    """A signed JWT and the claims it carries."""

    token: str
    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        """The token's unique id."""
        return str(self.claims["jti"])

    @property
    def expires_at(self) -> float:
        """Expiry as a POSIX timestamp."""
        return float(self.claims["exp"])


class JwtIssuer:
    """Signs and checks the gateway's JWTs.

    :param clock: source of "now" for ``iat``/``exp`` and for expiry checks.
    :param secret: HS256 key (config ``auth.jwt_secret``).
    :param issuer: ``iss`` claim, checked on decode.
    :param access_ttl, refresh_ttl: lifetimes in seconds.
    """

    def __init__(self, clock: IReactorTime, secret: str, issuer: str, access_ttl: int, refresh_ttl: int) -> None:
        if not secret:
            raise ValueError("the JWT secret is empty")
        self.clock = clock
        self._secret = secret
        self.issuer = issuer
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def _issue(self, typ: str, ttl: int, user: dict[str, Any], extra: dict[str, Any],
               now: float | None) -> IssuedToken:
        issued = int(self.clock.seconds() if now is None else now)
        claims = {"sub": user["uid"], "role": user["role"], "ep": int(user["token_epoch"]),
                  "jti": uuid.uuid4().hex, "iat": issued, "exp": issued + ttl, "iss": self.issuer,
                  "typ": typ, **extra}
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), claims)

    def issue_access(self, user: dict[str, Any], now: float | None = None) -> IssuedToken:
        """A short-lived access token for ``user`` (a row with uid, role, token_epoch)."""
        return self._issue("access", self.access_ttl, user, {}, now)

    def issue_refresh(self, user: dict[str, Any], family: str | None = None,
                      now: float | None = None) -> IssuedToken:
        """A refresh token; ``family`` groups the rotations of one login (reuse detection)."""
        return self._issue("refresh", self.refresh_ttl, user, {"fam": family or uuid.uuid4().hex}, now)

    def decode(self, token: str, typ: str) -> dict[str, Any]:
        """Check signature, issuer, type and expiry; return the claims or raise a 401 ApiError."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], issuer=self.issuer,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                         "require": ["sub", "exp", "iat", "jti", "iss"]})
        except jwt.PyJWTError:
            raise auth_error("invalid_token", "the token is not valid") from None
        if claims.get("typ") != typ or not isinstance(claims.get("ep"), int) or not isinstance(
                claims.get("exp"), (int, float)):
            raise auth_error("invalid_token", "the token is not valid")
        if claims["exp"] <= self.clock.seconds():
            raise auth_error("token_expired", "the token has expired")
        return claims


@dataclass(frozen=True)
class NewApiToken:
    """A freshly generated API token: the secret (shown once), its hash and display prefix."""

    token: str
    token_hash: str
    prefix: str


def hash_api_token(token: str) -> str:
    """The stored form of an API token (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_api_token() -> NewApiToken:
    """A new random API token (256 bits)."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewApiToken(token, hash_api_token(token), token[:10])
