"""``/users``: user management, token sessions and API tokens.

Authorisation is declared on each route (the router enforces it); the only rule enforced
here is what a non-admin may change about itself (``PUT /users/{uid}`` with
``self_allowed``): name, email, telephone and, with the old password, the password.
Responses never contain a password or hash: users are serialised through ``user_json``.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from twisted.logger import Logger

from dhis2gw.api.routing import ADMIN, Call, Response, route
from dhis2gw.auth.authenticator import client_address
from dhis2gw.auth.passwords import WeakPassword
from dhis2gw.auth.sessions import AuthServices
from dhis2gw.auth.tokens import new_api_token
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.errors import ApiError, not_found
from dhis2gw.storage.users import DuplicateUsername

ROLES = ["admin", "operator", "submitter"]
PUBLIC_FIELDS = ("uid", "username", "email", "full_name", "telephone", "role", "source_name", "is_active",
                 "created_at", "updated_at", "last_login_at", "callback_allowed", "orgunit_scope", "dataset_scope",
                 "may_delete")
SELF_EDITABLE = frozenset({"full_name", "email", "telephone", "password", "old_password"})
_TEXT = {"type": ["string", "null"], "maxLength": 300}
_USERNAME = {"type": "string", "pattern": r"^[^\s:]{1,150}$"}  # no ':' (Basic auth splits on it)
_PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024}
_UIDS = {"type": "array", "maxItems": 1000, "uniqueItems": True,
         "items": {"type": "string", "pattern": r"^[a-zA-Z][a-zA-Z0-9]{10}$"}}
#: What a user may do beyond its role (docs/security.md): admins set them on create and update.
PERMISSION_PROPERTIES = {"callback_allowed": {"type": "boolean"}, "orgunit_scope": _UIDS, "dataset_scope": _UIDS,
                         "may_delete": {"type": "boolean"}}

CREATE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["username", "password"],
    "properties": {
        "username": _USERNAME, "password": _PASSWORD, "email": _TEXT, "full_name": _TEXT, "telephone": _TEXT,
        "role": {"enum": ROLES}, "source_name": _TEXT, "is_active": {"type": "boolean"}, **PERMISSION_PROPERTIES,
        # the original's field names, so its clients keep working
        "firstName": _TEXT, "lastName": _TEXT, "isActive": {"type": "boolean"}, "isAdminUser": {"type": "boolean"},
    },
}
UPDATE_SCHEMA = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "username": _USERNAME, "email": _TEXT, "full_name": _TEXT, "telephone": _TEXT, "role": {"enum": ROLES},
        "source_name": _TEXT, "is_active": {"type": "boolean"}, "password": _PASSWORD, "old_password": _PASSWORD,
        **PERMISSION_PROPERTIES,
    },
}
LOGIN_SCHEMA = {"type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string", "maxLength": 150}, "password": _PASSWORD}}
REFRESH_SCHEMA = {"type": "object", "required": ["refresh_token"],
                  "properties": {"refresh_token": {"type": "string", "maxLength": 4096}}}
API_TOKEN_SCHEMA = {"type": "object", "additionalProperties": False,
                    "properties": {"description": _TEXT,
                                   "expires_in": {"type": ["integer", "null"], "minimum": 60,
                                                  "maximum": 10 * 366 * 86400}}}
_LIST_QUERY = tuple({"name": n, "in": "query", "schema": {"type": t}} for n, t in
                    (("username", "string"), ("q", "string"), ("role", "string"), ("active", "boolean"),
                     ("page", "integer"), ("page_size", "integer")))


def iso(value: Any) -> Any:
    """A timestamp as ISO 8601 (other values unchanged)."""
    return value.isoformat() if isinstance(value, datetime) else value


def user_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public view of a user row: an explicit allow-list, so no hash can slip through."""
    return {k: iso(row.get(k)) for k in PUBLIC_FIELDS}


def page_json(items: list[Any], total: int, page: int, page_size: int) -> dict[str, Any]:
    """The pagination envelope of list endpoints."""
    return {"items": items, "total": total, "page": page, "page_size": page_size,
            "total_pages": math.ceil(total / page_size) if total else 0}


class UsersApi:
    """User management, ``getToken``/``refreshToken`` and API tokens (mount under ``/api/v2``).

    :param auth: the wired auth objects (``dhis2gw.auth.sessions.build_auth``).
    """

    log = Logger()

    def __init__(self, auth: AuthServices) -> None:
        self.auth = auth

    # --- helpers ---------------------------------------------------------------------
    async def _user_or_404(self, uid: str) -> dict[str, Any]:
        row = await self.auth.users.get(uid)
        if row is None:
            raise not_found("user")
        return row

    def _check_password(self, password: str, username: str) -> None:
        try:
            self.auth.policy.check(password, username)
        except WeakPassword as e:
            raise ApiError(400, "weak_password", "the password does not meet the policy",
                           {"problems": e.problems}) from None

    # --- create / list / read ----------------------------------------------------------
    @route("POST", "/user", roles=ADMIN, body_schema=CREATE_SCHEMA, status=201, summary="Create a user",
           tags=("users",), responses={409: "the username is taken"})
    @route("POST", "/users", roles=ADMIN, body_schema=CREATE_SCHEMA, status=201, summary="Create a user",
           tags=("users",), responses={409: "the username is taken"})
    async def create_user(self, call: Call) -> dict[str, Any]:
        """Create a user (admin); 201 with its public JSON."""
        body = call.body
        username = body["username"]
        self._check_password(body["password"], username)
        role = body.get("role") or ("admin" if body.get("isAdminUser") else "submitter")
        full_name = body.get("full_name")
        if full_name is None and (body.get("firstName") or body.get("lastName")):
            full_name = " ".join(p for p in (body.get("firstName"), body.get("lastName")) if p)
        if await self.auth.users.username_taken(username):
            raise ApiError(409, "username_taken", "a user with this username already exists")
        password_hash = await self.auth.hasher.hash(body["password"])
        try:
            row = await self.auth.users.create(
                uid=generate_uid(), username=username, password_hash=password_hash, role=role,
                email=body.get("email"), full_name=full_name, telephone=body.get("telephone"),
                source_name=body.get("source_name"), is_active=body.get("is_active", body.get("isActive", True)),
                permissions={k: body[k] for k in PERMISSION_PROPERTIES if k in body})
        except DuplicateUsername:
            raise ApiError(409, "username_taken", "a user with this username already exists") from None
        from dhis2gw.logtext import printable

        self.log.info("User {username} ({uid}) created by {actor} with role {role}", username=printable(username),
                      uid=row["uid"], actor=call.require_principal().username, role=role)
        return user_json(row)

    @route("GET", "/users", roles=ADMIN, summary="List users", tags=("users",), query=_LIST_QUERY)
    async def list_users(self, call: Call) -> dict[str, Any]:
        """One page of users matching username/q/role/active."""
        page = call.int_arg("page", 1, minimum=1)
        page_size = call.int_arg("page_size", 20, minimum=1, maximum=200)
        role = call.arg("role")
        if role and role not in ROLES:
            raise ApiError(400, "invalid_parameter", "role must be admin, operator or submitter",
                           {"parameter": "role", "value": role})
        active_name = "active" if call.arg("active") is not None else "is_active"  # the original's name too
        active = None if call.arg(active_name) in (None, "") else call.bool_arg(active_name)
        rows, total = await self.auth.users.list(q=call.arg("q"), username=call.arg("username"), role=role,
                                                 active=active, page=page, page_size=page_size)
        return page_json([user_json(r) for r in rows], total, page, page_size)

    @route("GET", "/users/<uid>", roles=ADMIN, self_allowed=True, summary="Get a user", tags=("users",))
    async def get_user(self, call: Call, uid: str) -> dict[str, Any]:
        """One user (admin, or the user itself)."""
        return user_json(await self._user_or_404(uid))

    # --- update / deactivate -------------------------------------------------------------
    @route("PUT", "/users/<uid>", roles=ADMIN, self_allowed=True, body_schema=UPDATE_SCHEMA,
           summary="Update a user (a non-admin: its own name, email, telephone, password)", tags=("users",))
    async def update_user(self, call: Call, uid: str) -> dict[str, Any]:
        """Partial update; see the module docstring for what a non-admin may change."""
        principal = call.require_principal()
        body = dict(call.body)
        is_self = principal.uid == uid
        if principal.role != "admin":
            refused = sorted(set(body) - SELF_EDITABLE)
            if refused:
                raise ApiError(403, "forbidden", "you may change only your full_name, email, telephone and password",
                               {"fields": refused})
        current = await self._user_or_404(uid)
        if is_self and (body.get("is_active") is False or body.get("role", current["role"]) != current["role"]):
            raise ApiError(409, "self_lockout", "you cannot deactivate yourself or change your own role")
        password = body.pop("password", None)
        old_password = body.pop("old_password", None)
        password_hash: str | None = None
        if password is not None:
            if is_self:
                if old_password is None:
                    raise ApiError(400, "old_password_required", "changing your password requires old_password")
                try:
                    await self.auth.authenticator.verify_login(current["username"], old_password,
                                                               client_address(call.request))
                except ApiError as e:
                    if e.status == 429:
                        raise
                    raise ApiError(403, "invalid_old_password", "old_password is not correct") from None
            self._check_password(password, body.get("username", current["username"]))
            password_hash = await self.auth.hasher.hash(password)
        if "username" in body and await self.auth.users.username_taken(body["username"], except_uid=uid):
            raise ApiError(409, "username_taken", "a user with this username already exists")
        revoke = body.get("is_active") is False and current["is_active"]
        try:
            row = await self.auth.users.update(uid, body, password_hash=password_hash, revoke_sessions=revoke)
        except DuplicateUsername:
            raise ApiError(409, "username_taken", "a user with this username already exists") from None
        self.auth.authenticator.invalidate_user(uid)
        if row is None:
            raise not_found("user")
        self.log.info("User {uid} updated by {actor} (fields: {fields}, password changed: {pw})", uid=uid,
                      actor=principal.username, fields=sorted(body), pw=password_hash is not None)
        return user_json(row)

    @route("DELETE", "/users/<uid>", roles=ADMIN, summary="Deactivate a user (never a hard delete)",
           tags=("users",))
    async def deactivate_user(self, call: Call, uid: str) -> dict[str, Any]:
        """Deactivate a user and revoke every token it holds."""
        principal = call.require_principal()
        if principal.uid == uid:
            raise ApiError(409, "self_lockout", "you cannot deactivate yourself")
        row = await self.auth.users.update(uid, {"is_active": False}, revoke_sessions=True)
        self.auth.authenticator.invalidate_user(uid)
        if row is None:
            raise not_found("user")
        self.log.info("User {uid} deactivated by {actor}", uid=uid, actor=principal.username)
        return user_json(row)

    # --- sessions ------------------------------------------------------------------------
    @route("POST", "/users/getToken", public=True, body_schema=LOGIN_SCHEMA, body_required=False,
           summary="Log in: username + password → access and refresh JWT", tags=("auth",),
           responses={401: "invalid credentials", 429: "too many failed logins"})
    async def get_token(self, call: Call) -> dict[str, Any]:
        """Log in with a JSON body, or (the original's way) with Basic credentials and no body."""
        address = client_address(call.request)
        if call.body is None:
            # the original's clients call getToken with Basic credentials and no body
            principal = await self.auth.authenticator.authenticate(call.request)
            if principal.method != "basic":  # a stolen access token must not buy a refresh token
                raise ApiError(401, "unauthenticated", "getToken needs a username and password (JSON body or Basic)",
                               headers={"WWW-Authenticate": 'Basic realm="dhis2gw", charset="UTF-8"'})
            state = await self.auth.authenticator.user_state(principal.uid)
            assert state is not None
            return await self.auth.sessions.login_verified(state)
        return await self.auth.sessions.login(call.body["username"], call.body["password"], address)

    @route("POST", "/users/refreshToken", public=True, body_schema=REFRESH_SCHEMA,
           summary="Rotate a refresh token (reuse revokes the session)", tags=("auth",),
           responses={401: "invalid, expired, revoked or reused refresh token"})
    async def refresh_token(self, call: Call) -> dict[str, Any]:
        """Rotate a refresh token."""
        return await self.auth.sessions.refresh(call.body["refresh_token"])

    # --- API tokens ------------------------------------------------------------------------
    @route("POST", "/users/<uid>/tokens", roles=ADMIN, body_schema=API_TOKEN_SCHEMA, body_required=False,
           status=201, summary="Create an API token for a user (shown once)", tags=("users",))
    async def create_api_token(self, call: Call, uid: str) -> dict[str, Any]:
        """Create an API token for a user; the token is in this answer only."""
        user = await self._user_or_404(uid)
        body = call.body or {}
        new = new_api_token()
        expires_in = body.get("expires_in")
        expires_at = self.auth.issuer.clock.seconds() + expires_in if expires_in else None
        row = await self.auth.tokens.create_api_token(user["id"], new.token_hash, new.prefix,
                                                      body.get("description"), expires_at)
        self.log.info("API token {prefix}… created for {uid} by {actor}", prefix=new.prefix, uid=uid,
                      actor=call.require_principal().username)
        return {**{k: iso(v) for k, v in row.items()}, "token": new.token,
                "note": "store this token now: it is not shown again"}

    @route("GET", "/users/<uid>/tokens", roles=ADMIN, summary="List a user's API tokens", tags=("users",))
    async def list_api_tokens(self, call: Call, uid: str) -> dict[str, Any]:
        """A user's API tokens (prefix, state, dates; never the token)."""
        user = await self._user_or_404(uid)
        rows = await self.auth.tokens.list_api_tokens(user["id"])
        return {"items": [{k: iso(v) for k, v in r.items()} for r in rows]}

    @route("DELETE", "/users/<uid>/tokens/<int:token_id>", roles=ADMIN, summary="Revoke an API token",
           tags=("users",))
    async def revoke_api_token(self, call: Call, uid: str, token_id: int) -> Response:
        """Revoke one API token at once."""
        user = await self._user_or_404(uid)
        if not await self.auth.tokens.revoke_api_token(user["id"], token_id):
            raise not_found("API token")
        self.auth.authenticator.forget_api_tokens()
        return Response({"id": token_id, "is_active": False})

