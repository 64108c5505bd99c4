"""The authorisation matrix: every mounted route × every kind of credential.

``walk_auth_matrix`` discovers the routes from ``Router.routes`` (so a route added later is
covered without touching the test), fills path arguments with dummy values, sends each route
a request per credential case and returns every answer that breaks the matrix:

=====================  ==========================================================
no credentials         401 ``unauthenticated`` with ``WWW-Authenticate``
malformed header       401
expired JWT            401 ``token_expired``
tampered JWT           401 ``invalid_token``
deactivated user       401 (Bearer, Basic and Token of a deactivated user)
wrong-role JWT         403 ``forbidden``
own uid, wrong role    not 401/403 on ``self_allowed`` routes
valid                  not 401/403 for every role the route allows
=====================  ==========================================================

Public routes must answer every case with neither 401 nor 403. ``prepare_credentials`` mints
everything from a wired ``AuthServices`` so any suite (the full gateway included) can run it.
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dhis2gw.api.routing import MountedRoute
from dhis2gw.auth.sessions import AuthServices
from dhis2gw.auth.tokens import JwtIssuer, new_api_token
from dhis2gw.dhis2.uids import generate_uid

ROLES = ("admin", "operator", "submitter")
DUMMY_UID = "ZzDummyUid1"
DUMMY_INT = "987654321"
Send = Callable[[str, str, dict[str, str], bytes | None], Awaitable[tuple[int, bytes, dict[str, str]]]]


@dataclass
class MatrixCredentials:
    """Authorization header values for each case, and the uid of each role's user."""

    valid: dict[str, str]
    own_uid: dict[str, str]
    expired: dict[str, str]
    tampered: list[str]
    deactivated: list[str]
    malformed: list[str] = field(default_factory=lambda: [
        "Bearer", "Bearer ", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer two tokens",
        "Basic", "Basic !!!notbase64!!!", "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Token", "Token dgw_doesnotexist0000000000", "Digest abc", "JWT x.y.z", "\u00e9\u00e9"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tamper(token: str, **changes: Any) -> str:
    """``token`` with claims changed but the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def unsigned(token: str) -> str:
    """``token`` re-sent with ``alg: none`` and no signature."""
    _, payload, _ = token.split(".")
    return ".".join([_b64(b'{"alg":"none","typ":"JWT"}'), payload, ""])


async def prepare_credentials(auth: AuthServices, password: str = "matrix-Password-123") -> MatrixCredentials:
    """Create one active user per role plus a deactivated admin, and mint every credential case.

    The deactivated user's Basic credentials and API token are used once *before* it is
    deactivated, so the matrix also proves the caches are voided.
    """
    password_hash = await auth.hasher.hash(password)
    valid, own, expired = {}, {}, {}
    now = auth.issuer.clock.seconds()
    for role in ROLES:
        user = await auth.users.create(uid=generate_uid(), username=f"matrix-{role}-{generate_uid()}",
                                       password_hash=password_hash, role=role)
        valid[role] = "Bearer " + auth.issuer.issue_access(user).token
        own[role] = user["uid"]
        expired[role] = "Bearer " + auth.issuer.issue_access(user, now=now - auth.issuer.access_ttl - 5).token
    admin_token = valid["admin"].split(" ", 1)[1]
    foreign = JwtIssuer(auth.issuer.clock, "another-secret-" + "y" * 40, auth.issuer.issuer, 900, 900)
    admin_row = await auth.users.get(own["admin"])
    assert admin_row is not None
    tampered = ["Bearer " + tamper(valid["submitter"].split(" ", 1)[1], role="admin"),
                "Bearer " + tamper(admin_token, exp=int(now) + 10**6),
                "Bearer " + tamper(admin_token, sub=DUMMY_UID),
                "Bearer " + unsigned(admin_token),
                "Bearer " + foreign.issue_access(admin_row).token,
                "Bearer " + admin_token[:-3] + ("AAA" if not admin_token.endswith("AAA") else "BBB")]

    gone = await auth.users.create(uid=generate_uid(), username=f"matrix-gone-{generate_uid()}",
                                   password_hash=password_hash, role="admin")
    api = new_api_token()
    await auth.tokens.create_api_token(gone["id"], api.token_hash, api.prefix, "matrix", None)
    basic = "Basic " + base64.b64encode(f"{gone['username']}:{password}".encode()).decode()
    bearer = "Bearer " + auth.issuer.issue_access(gone).token
    # warm every cache with the still-active user, then deactivate as the API does
    await auth.authenticator.authenticate(_HeaderOnly(basic))
    await auth.authenticator.authenticate(_HeaderOnly("Token " + api.token))
    await auth.authenticator.authenticate(_HeaderOnly(bearer))
    await auth.users.update(gone["uid"], {"is_active": False}, revoke_sessions=True)
    auth.authenticator.invalidate_user(gone["uid"])
    return MatrixCredentials(valid, own, expired, tampered, [bearer, basic, "Token " + api.token])


class _HeaderOnly:
    """Just enough of a request to authenticate a header value."""

    def __init__(self, header: str) -> None:
        self._header = header.encode()

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802
        return self._header if name.lower() == b"authorization" else None

    def getClientAddress(self) -> Any:  # noqa: N802
        return None


_ARG = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def fill_path(full_path: str, uid: str = DUMMY_UID) -> str:
    """``full_path`` with every ``<arg>`` replaced by a dummy (``uid`` for ``<uid>``)."""
    def value(m: re.Match[str]) -> str:
        converter, name = m.group(1), m.group(2)
        if converter in ("int", "float"):
            return DUMMY_INT
        if name == "uid":
            return uid
        return DUMMY_UID
    return _ARG.sub(value, full_path)


async def walk_auth_matrix(routes: list[MountedRoute], send: Send, creds: MatrixCredentials,
                           skip: Callable[[MountedRoute], bool] = lambda r: False) -> tuple[int, list[str]]:
    """Check every route against the matrix; return (number of checks, list of violations)."""
    checks, problems = 0, []

    async def expect(route: MountedRoute, case: str, header: str | None, uid: str,
                     want: int | None, code: str | None = None) -> None:
        nonlocal checks
        checks += 1
        headers = {"Authorization": header} if header is not None else {}
        body = None
        if route.spec.method in ("POST", "PUT", "PATCH"):
            headers["Content-Type"] = "application/json"
            body = b"{}"
        status, raw, response_headers = await send(route.spec.method, fill_path(route.full_path, uid), headers,
                                                   body)
        label = f"{route.spec.method} {route.full_path} [{case}]"
        try:
            error = json.loads(raw).get("error") if raw else None
        except (ValueError, AttributeError):
            error = None
        if status >= 400 and not isinstance(error, dict):
            problems.append(f"{label}: {status} without the JSON error envelope")
        if want is None:
            if status in (401, 403):
                problems.append(f"{label}: expected neither 401 nor 403, got {status} {raw[:200]!r}")
            return
        if status != want:
            problems.append(f"{label}: expected {want}, got {status} {raw[:200]!r}")
            return
        if code is not None and (error or {}).get("code") != code:
            problems.append(f"{label}: expected error code {code}, got {raw[:200]!r}")
        if want == 401 and "www-authenticate" not in response_headers:
            problems.append(f"{label}: 401 without WWW-Authenticate")

    for route in routes:
        if skip(route):
            continue
        spec = route.spec
        if spec.public:
            for case, header in [("no credentials", None), *[("malformed", h) for h in creds.malformed],
                                 *[("valid " + r, h) for r, h in creds.valid.items()]]:
                await expect(route, case, header, DUMMY_UID, None)
            continue
        assert spec.roles is not None
        await expect(route, "no credentials", None, DUMMY_UID, 401, "unauthenticated")
        for header in creds.malformed:
            await expect(route, f"malformed {header!r}", header, DUMMY_UID, 401)
        for role, header in creds.expired.items():
            await expect(route, f"expired {role}", header, DUMMY_UID, 401, "token_expired")
        for i, header in enumerate(creds.tampered):
            await expect(route, f"tampered #{i}", header, DUMMY_UID, 401, "invalid_token")
        for header in creds.deactivated:
            await expect(route, f"deactivated {header.split()[0]}", header, DUMMY_UID, 401)
        for role, header in creds.valid.items():
            if role in spec.roles:
                await expect(route, f"valid {role}", header, DUMMY_UID, None)
            else:
                await expect(route, f"wrong role {role}", header, DUMMY_UID, 403, "forbidden")
                if spec.self_allowed and "<uid>" in route.full_path:
                    await expect(route, f"own uid {role}", header, creds.own_uid[role], None)
    return checks, problems
