"""Credentials for one DHIS2 destination, rendered as the ``Authorization`` header.

DHIS2 accepts HTTP Basic on every version and Personal Access Tokens
(``Authorization: ApiToken <token>``) from 2.37.  Credentials are always sent
pre-emptively: without them DHIS2 redirects API calls to its login page.
The secret never appears in ``repr`` (it would end up in logs).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BasicAuth:
    """HTTP Basic credentials (``Authorization: Basic base64(user:password)``)."""

    username: str
    password: str = field(repr=False)

    def header_value(self) -> bytes:
        """The ``Authorization`` header value."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode())
        return b"Basic " + token


@dataclass(frozen=True)
class ApiTokenAuth:
    """A DHIS2 Personal Access Token (``d2pat_...`` 2.37-2.40, ``d2p_...`` 2.41+)."""

    token: str = field(repr=False)

    def header_value(self) -> bytes:
        """The ``Authorization`` header value."""
        return b"ApiToken " + self.token.strip().encode("ascii")


DHIS2Auth = BasicAuth | ApiTokenAuth


def auth_from_settings(
    username: str | None = None, password: str | None = None, token: str | None = None
) -> DHIS2Auth:
    """Pick the scheme from configuration values: a token wins over user/password.

    Raises ValueError naming what is missing, so start-up can report one clear line.
    """
    if token:
        return ApiTokenAuth(token)
    if username and password is not None:
        return BasicAuth(username, password)
    raise ValueError("DHIS2 credentials need either a personal access token or a user and password")
