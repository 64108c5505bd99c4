"""``dhis2gw createuser``: create a user from the command line (the first admin, typically).

There is no default account in the migrations: this is how an installation gets its first
administrator. The password is checked against the policy and hashed with argon2id in the
reactor's thread pool, exactly as through the API.
"""
from __future__ import annotations

from dhis2gw.auth.passwords import PasswordHasher, PasswordPolicy, WeakPassword
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.storage.database import Database
from dhis2gw.storage.users import DuplicateUsername, UserStore

ROLES = ("admin", "operator", "submitter")


async def create_user_command(db: Database, username: str, role: str, password: str, email: str | None = None,
                              min_length: int = 10) -> str:
    """Create a user and return a one-line confirmation naming its uid.

    Raises ``ValueError`` (with a message fit for the terminal, never containing the password)
    for an unknown role, a malformed or taken username (compared case-insensitively) or a weak
    password. ``db`` must be started; its reactor runs the hashing thread.
    """
    username = username.strip()
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if not username or len(username) > 150 or ":" in username or any(c.isspace() for c in username):
        raise ValueError("the username must be 1-150 characters without spaces or ':'")
    try:
        PasswordPolicy(min_length=min_length).check(password, username)
    except WeakPassword as e:
        raise ValueError(f"weak password: {e}") from None
    users = UserStore(db)
    if await users.username_taken(username):
        raise ValueError(f"a user named {username!r} already exists (usernames are case-insensitive)")
    password_hash = await PasswordHasher(db.reactor).hash(password)
    try:
        row = await users.create(uid=generate_uid(), username=username, password_hash=password_hash, role=role,
                                 email=email)
    except DuplicateUsername:
        raise ValueError(f"a user named {username!r} already exists (usernames are case-insensitive)") from None
    return f"created {role} {row['username']} (uid {row['uid']})"
