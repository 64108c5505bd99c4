"""Authentication and authorities: Basic, personal access tokens, login redirects, 403s."""
from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dhis2gw.sim.metadata import Metadata
from dhis2gw.sim.uids import make_pat, pat_checksum_ok, pat_well_formed
from dhis2gw.sim.versions import Version
from dhis2gw.sim.webmessage import SimResponse, error

API_TOKEN_RE = re.compile(r"^ApiToken (?P<token>[a-z0-9-._~+/]+=*)$", re.IGNORECASE)


@dataclass
class Pat:
    """A registered personal access token."""

    token: str
    username: str
    expires_at: float | None = None


class Authenticator:
    """Decides who a request is, or the DHIS2 response refusing it."""

    def __init__(self, metadata: Metadata, version: Callable[[], Version], now: Callable[[], float],
                 rng: random.Random) -> None:
        """Users come from *metadata*; *now* (epoch seconds) checks PAT expiry."""
        self.metadata, self.version, self.now, self.rng = metadata, version, now, rng
        self.pats: dict[str, Pat] = {}

    def users(self) -> list[dict[str, Any]]:
        """All users."""
        return list(self.metadata.objects["users"].values())

    def user(self, username: str) -> dict[str, Any] | None:
        """The user with that username."""
        return next((u for u in self.users() if u["username"] == username), None)

    def add_user(self, username: str, password: str, authorities: list[str] | None = None,
                 org_units: list[str] | None = None) -> dict[str, Any]:
        """Create (or replace) a user; default authorities ``ALL``, default org unit the root."""
        from dhis2gw.sim.uids import new_uid
        existing = self.user(username)
        uid = existing["id"] if existing else new_uid(self.rng)
        roots = [o["id"] for o in self.metadata.objects["organisationUnits"].values() if o["level"] == 1]
        user = {"id": uid, "username": username, "password": password, "firstName": username, "surname": "User",
                "authorities": authorities if authorities is not None else ["ALL"],
                "organisationUnits": org_units if org_units is not None else roots}
        self.metadata.objects["users"][uid] = user
        return user

    def add_pat(self, username: str = "admin", token: str | None = None, expires_at: float | None = None) -> str:
        """Register a PAT for *username* (generated with a valid checksum unless given)."""
        token = token or make_pat(self.rng, v2=self.version().pat_v2)
        self.pats[token] = Pat(token, username, expires_at)
        return token

    def authenticate(self, headers: dict[str, str]) -> tuple[dict[str, Any] | None, SimResponse | None]:
        """``(user, None)`` or ``(None, refusal)`` for the request *headers* (lower-case keys)."""
        v = self.version()
        auth = headers.get("authorization", "")
        xhr = headers.get("x-requested-with", "").lower() == "xmlhttprequest"
        scheme = auth.split(" ", 1)[0].lower() if auth else ""
        if scheme == "basic":
            try:
                username, _, password = base64.b64decode(auth.split(" ", 1)[1].strip()).decode().partition(":")
            except (ValueError, IndexError, UnicodeDecodeError):
                return None, error(401, "Unauthorized")
            user = self.user(username)
            if not user or user.get("password") != password:
                return None, error(401, "Unauthorized")
            if user.get("disabled"):
                return None, error(401, "Account disabled" if v.minor >= 41 else "Unauthorized")
            return user, None
        if scheme == "apitoken" and v.pat:
            m = API_TOKEN_RE.match(auth.strip())
            token = m.group("token") if m else ""
            if not m or not pat_well_formed(token) or (token.startswith("d2p_") and not v.pat_v2):
                return None, error(400, "Api token is malformed")
            if not pat_checksum_ok(token):
                return None, error(400, "Checksum validation failed")
            pat = self.pats.get(token)
            if pat is None:
                return None, self._pat_401("The API token does not exists")
            if pat.expires_at is not None and self.now() > pat.expires_at:
                return None, self._pat_401("Failed to authenticate API token, token has expired.")
            user = self.user(pat.username)
            if not user:
                return None, self._pat_401("The API token does not exists")
            return user, None
        # No usable credentials (2.36 does not know ApiToken): browsers are sent to the login page.
        if xhr:
            return None, error(401, "Unauthorized")
        return None, SimResponse.html(302, "", {"Location": v.login_path})

    def _pat_401(self, message: str) -> SimResponse:
        response = error(401, message)
        response.headers["WWW-Authenticate"] = f'ApiToken error="invalid_token", error_description="{message}"'
        return response

    @staticmethod
    def has_authority(user: dict[str, Any], authority: str) -> bool:
        """True if the user holds *authority* or ``ALL``."""
        auths = user.get("authorities", [])
        return "ALL" in auths or authority in auths
