"""A fake Authenticator for testing API areas without the user database.

``Authorization: Test <role> <user_id>`` authenticates as a principal with that role (user id
defaults to 1). Anything else is a 401. It implements the same protocol as the real
authenticator (dhis2gw.api.routing.Authenticator); full-gateway tests use the real one.
"""
from __future__ import annotations

from typing import Any

from dhis2gw.auth.principal import Principal
from dhis2gw.errors import ApiError


class StaticAuthenticator:
    """Authenticates ``Test <role> [user_id] [source_name]`` headers."""

    async def authenticate(self, request: Any) -> Principal:
        header = request.getHeader(b"authorization")
        header = header.decode() if isinstance(header, bytes) else (header or "")
        parts = header.split()
        if len(parts) < 2 or parts[0] != "Test" or parts[1] not in ("admin", "operator", "submitter"):
            raise ApiError(401, "unauthenticated", "authentication required",
                           headers={"WWW-Authenticate": 'Bearer realm="dhis2gw"'})
        user_id = int(parts[2]) if len(parts) > 2 else 1
        source = parts[3] if len(parts) > 3 else None
        return Principal(user_id=user_id, uid=f"user{user_id:07d}"[:11], username=f"{parts[1]}{user_id}",
                         role=parts[1], source_name=source, method="test")


def test_headers(role: str, user_id: int = 1) -> dict[str, list[str]]:
    """Request headers for StaticAuthenticator."""
    return {"Authorization": [f"Test {role} {user_id}"]}


test_headers.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
