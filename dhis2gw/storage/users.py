"""Users, refresh tokens and API tokens in PostgreSQL.

``password_hash`` is selected by exactly one method (``credentials``), used by the login path;
every other query lists its columns explicitly so a hash can never reach a response by way of
a ``SELECT *``. Revoking a user's sessions (password change, deactivation) is one transaction:
bump ``token_epoch`` (kills every JWT), revoke its refresh tokens and its API tokens.
Times that decide validity (expiry) are passed in from the caller's clock.
"""
from __future__ import annotations

from typing import Any

import psycopg2

from dhis2gw.storage.database import Database, cursor_fetch

USER_COLUMNS = ("id, uid, username, email, full_name, telephone, role, source_name, is_active, token_epoch, "
                "created_at, updated_at, last_login_at, callback_allowed, orgunit_scope, dataset_scope, may_delete")
#: What a user may do beyond its role (migration 0016; see docs/security.md).
PERMISSION_FIELDS = ("callback_allowed", "orgunit_scope", "dataset_scope", "may_delete")
EDITABLE_FIELDS = ("username", "email", "full_name", "telephone", "role", "source_name", "is_active",
                   *PERMISSION_FIELDS)


class DuplicateUsername(Exception):
    """Another user already has this username (compared case-insensitively)."""


class UserStore:
    """The ``users`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, *, uid: str, username: str, password_hash: str, role: str, email: str | None = None,
                     full_name: str | None = None, telephone: str | None = None,
                     source_name: str | None = None, is_active: bool = True,
                     permissions: dict[str, Any] | None = None) -> dict[str, Any]:
        """Insert a user; raise ``DuplicateUsername`` when the name is taken.

        ``permissions``: values of PERMISSION_FIELDS (the rest keep their defaults).
        """
        extra = {k: v for k, v in (permissions or {}).items() if k in PERMISSION_FIELDS}
        columns = "".join(f", {k}" for k in extra)
        try:
            row = await self.db.fetch_one(
                "users.create",
                f"INSERT INTO users (uid, username, password_hash, role, email, full_name, telephone, source_name,"
                f" is_active{columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s{', %s' * len(extra)})"
                f" RETURNING {USER_COLUMNS}",
                (uid, username, password_hash, role, email, full_name, telephone, source_name, is_active,
                 *[list(v) if isinstance(v, (list, tuple)) else v for v in extra.values()]))
        except psycopg2.IntegrityError as e:
            if getattr(e, "pgcode", None) == "23505" and "username" in str(e):
                raise DuplicateUsername(username) from None
            raise
        assert row is not None
        return row

    async def get(self, uid: str) -> dict[str, Any] | None:
        """The user with public id ``uid`` (no password hash), or None."""
        return await self.db.fetch_one("users.get", f"SELECT {USER_COLUMNS} FROM users WHERE uid = %s", (uid,))

    async def callback_allowed(self, user_id: int) -> bool:
        """The ``callback_allowed`` permission of the user with id ``user_id`` (False for no such user)."""
        row = await self.db.fetch_one("users.callback_allowed", "SELECT callback_allowed FROM users WHERE id = %s",
                                      (user_id,))
        return bool(row and row["callback_allowed"])

    async def username_taken(self, username: str, except_uid: str | None = None) -> bool:
        """True when another user has ``username`` (case-insensitive)."""
        row = await self.db.fetch_one(
            "users.username_taken", "SELECT 1 AS x FROM users WHERE lower(username) = lower(%s) AND uid <> %s",
            (username, except_uid or ""))
        return row is not None

    async def credentials(self, username: str) -> dict[str, Any] | None:
        """The user named ``username`` WITH its password hash: for verifying a login only."""
        return await self.db.fetch_one(
            "users.credentials",
            f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower(%s)", (username,))

    async def list(self, *, q: str | None = None, username: str | None = None, role: str | None = None,
                   active: bool | None = None, page: int = 1, page_size: int = 20
                   ) -> tuple[list[dict[str, Any]], int]:
        """One page of users (newest first) matching the filters, and the total count."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if username:
            where.append("lower(username) = lower(%s)")
            params.append(username)
        if q:
            where.append("(username ILIKE %s OR full_name ILIKE %s OR email ILIKE %s)")
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like, like]
        if role:
            where.append("role = %s")
            params.append(role)
        if active is not None:
            where.append("is_active = %s")
            params.append(active)
        clause = " AND ".join(where)
        total_row = await self.db.fetch_one("users.count", f"SELECT count(*) AS n FROM users WHERE {clause}", params)
        rows = await self.db.fetch(
            "users.list",
            f"SELECT {USER_COLUMNS} FROM users WHERE {clause} ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
            params + [page_size, (page - 1) * page_size])
        return rows, int(total_row["n"]) if total_row else 0

    async def update(self, uid: str, fields: dict[str, Any], *, password_hash: str | None = None,
                     revoke_sessions: bool = False) -> dict[str, Any] | None:
        """Change ``fields`` (a subset of EDITABLE_FIELDS) and optionally the password.

        With ``revoke_sessions`` (always when the password changes or the user is deactivated)
        every token the user holds stops working in the same transaction.
        """
        sets: list[str] = ["updated_at = now()"]
        params: list[Any] = []
        for name, value in fields.items():
            if name not in EDITABLE_FIELDS:
                raise ValueError(f"not an editable field: {name}")
            sets.append(f"{name} = %s")
            params.append(value)
        if password_hash is not None:
            sets.append("password_hash = %s")
            params.append(password_hash)
            revoke_sessions = True
        if revoke_sessions:
            sets.append("token_epoch = token_epoch + 1")

        async def run(cursor: Any) -> dict[str, Any] | None:
            rows = await cursor_fetch(cursor, f"UPDATE users SET {', '.join(sets)} WHERE uid = %s "
                                              f"RETURNING {USER_COLUMNS}", params + [uid])
            if not rows:
                return None
            if revoke_sessions:
                await cursor_fetch(cursor, "UPDATE refresh_tokens SET revoked_at = now() "
                                           "WHERE user_id = %s AND revoked_at IS NULL", (rows[0]["id"],))
                await cursor_fetch(cursor, "UPDATE api_tokens SET is_active = false "
                                           "WHERE user_id = %s AND is_active", (rows[0]["id"],))
            return rows[0]

        try:
            return await self.db.transaction("users.update", run)
        except psycopg2.IntegrityError as e:
            if getattr(e, "pgcode", None) == "23505" and "username" in str(e):
                raise DuplicateUsername(str(fields.get("username"))) from None
            raise

    async def end_access_tokens(self, user_id: int) -> None:
        """Bump ``token_epoch``: every access and refresh JWT of the user stops working (API tokens stay)."""
        await self.db.execute("users.end_access_tokens",
                              "UPDATE users SET token_epoch = token_epoch + 1, updated_at = now() WHERE id = %s",
                              (user_id,))

    async def record_login(self, user_id: int) -> None:
        """Set ``last_login_at``."""
        await self.db.execute("users.record_login", "UPDATE users SET last_login_at = now() WHERE id = %s",
                              (user_id,))

    async def replace_hash(self, user_id: int, password_hash: str) -> None:
        """Store a re-hash of the same password (argon2 parameters changed): sessions stay valid."""
        await self.db.execute("users.replace_hash", "UPDATE users SET password_hash = %s WHERE id = %s",
                              (password_hash, user_id))


class TokenStore:
    """The ``refresh_tokens`` and ``api_tokens`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_refresh(self, jti: str, family: str, user_id: int, issued_at: float, expires_at: float) -> None:
        """Record a newly issued refresh token."""
        await self.db.execute(
            "tokens.add_refresh",
            "INSERT INTO refresh_tokens (jti, family, user_id, issued_at, expires_at)"
            " VALUES (%s, %s, %s, to_timestamp(%s), to_timestamp(%s))",
            (jti, family, user_id, issued_at, expires_at))

    async def rotate_refresh(self, old_jti: str, user_id: int, new_jti: str, issued_at: float,
                             new_expires_at: float) -> str:
        """Spend ``old_jti`` and record its successor, atomically.

        Returns ``"ok"``; ``"reused"`` when ``old_jti`` was already spent (its whole family is
        revoked: someone replayed a stolen token); ``"invalid"`` when it is unknown, revoked or
        expired.
        """
        async def run(cursor: Any) -> str:
            spent = await cursor_fetch(
                cursor, "UPDATE refresh_tokens SET spent_at = to_timestamp(%s) WHERE jti = %s AND user_id = %s"
                        " AND spent_at IS NULL AND revoked_at IS NULL AND expires_at > to_timestamp(%s)"
                        " RETURNING family", (issued_at, old_jti, user_id, issued_at))
            if spent:
                await cursor_fetch(
                    cursor, "INSERT INTO refresh_tokens (jti, family, user_id, issued_at, expires_at)"
                            " VALUES (%s, %s, %s, to_timestamp(%s), to_timestamp(%s))",
                    (new_jti, spent[0]["family"], user_id, issued_at, new_expires_at))
                return "ok"
            known = await cursor_fetch(cursor, "SELECT family, spent_at FROM refresh_tokens WHERE jti = %s",
                                       (old_jti,))
            if known and known[0]["spent_at"] is not None:
                await cursor_fetch(cursor, "UPDATE refresh_tokens SET revoked_at = to_timestamp(%s)"
                                           " WHERE family = %s AND revoked_at IS NULL",
                                   (issued_at, known[0]["family"]))
                return "reused"
            return "invalid"

        return await self.db.transaction("tokens.rotate_refresh", run)

    async def refresh_family_state(self, family: str) -> list[dict[str, Any]]:
        """Every token of a family (tests and audits): jti, spent_at, revoked_at."""
        return await self.db.fetch("tokens.family", "SELECT jti, spent_at, revoked_at FROM refresh_tokens"
                                                    " WHERE family = %s ORDER BY issued_at, jti", (family,))

    async def create_api_token(self, user_id: int, token_hash: str, prefix: str, description: str | None,
                               expires_at: float | None) -> dict[str, Any]:
        """Store a new API token (only its hash)."""
        row = await self.db.fetch_one(
            "tokens.create_api",
            "INSERT INTO api_tokens (user_id, token_hash, prefix, description, expires_at)"
            " VALUES (%s, %s, %s, %s, to_timestamp(%s))"
            " RETURNING id, prefix, description, is_active, expires_at, created_at, last_used_at",
            (user_id, token_hash, prefix, description, expires_at))
        assert row is not None
        return row

    async def list_api_tokens(self, user_id: int) -> list[dict[str, Any]]:
        """A user's API tokens (never the token or its hash)."""
        return await self.db.fetch(
            "tokens.list_api",
            "SELECT id, prefix, description, is_active, expires_at, created_at, last_used_at FROM api_tokens"
            " WHERE user_id = %s ORDER BY id DESC", (user_id,))

    async def revoke_api_token(self, user_id: int, token_id: int) -> bool:
        """Deactivate one of a user's API tokens; False when there is no such token."""
        row = await self.db.fetch_one(
            "tokens.revoke_api", "UPDATE api_tokens SET is_active = false WHERE id = %s AND user_id = %s"
                                 " RETURNING id", (token_id, user_id))
        return row is not None

    async def use_api_token(self, token_hash: str, now: float) -> dict[str, Any] | None:
        """The live token with ``token_hash`` and its user's auth state (touching last_used_at), or None."""
        return await self.db.fetch_one(
            "tokens.use_api",
            "UPDATE api_tokens t SET last_used_at = to_timestamp(%s) FROM users u"
            " WHERE t.token_hash = %s AND t.is_active AND u.id = t.user_id"
            " AND (t.expires_at IS NULL OR t.expires_at > to_timestamp(%s))"
            " RETURNING t.id AS token_id, extract(epoch FROM t.expires_at)::float8 AS token_expires,"
            " u.id, u.uid, u.username, u.role, u.source_name, u.is_active, u.token_epoch,"
            " u.callback_allowed, u.orgunit_scope, u.dataset_scope, u.may_delete",
            (now, token_hash, now))
