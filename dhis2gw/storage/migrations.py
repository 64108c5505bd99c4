"""Migration runner: numbered plain-SQL files, an applied-versions table with checksums.

Files in ``migrations_dir`` are named ``NNNN_description.sql`` (``NNNN`` a positive integer).
Each runs in its own transaction and is recorded in ``schema_migrations`` with the SHA-256 of
its text. The runner

* takes a PostgreSQL advisory lock, so two processes starting at once never migrate together
  (the second waits, then finds nothing left to do);
* refuses to go on when the database has a version this code does not know (a newer gateway
  migrated it) or when an applied file's checksum changed;
* is idempotent: running it twice applies nothing the second time.

It runs on its own connection before the reactor serves traffic (from ``Database``'s start-up
hook, or from ``dhis2gw migrate``).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2.extras
from twisted.logger import Logger
from txpostgres import txpostgres

log = Logger()

# Any constant works; it only has to be the same for every dhis2gw process.
ADVISORY_LOCK_KEY = 0x64686973  # "dhis"

_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")


class MigrationError(Exception):
    """The schema cannot be brought to this code's version; start-up must stop."""


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def migrations_path(value: str) -> Path:
    """Turn a ``file://`` URL or a plain path into a path."""
    if value.startswith("file://"):
        value = value[len("file://"):]
    return Path(value)


def load_migrations(directory: str | Path) -> list[Migration]:
    """Read and order the migration files of ``directory``."""
    path = migrations_path(str(directory))
    if not path.is_dir():
        raise MigrationError(f"server.migrations_dir: {path} is not a directory")
    found: dict[int, Migration] = {}
    for entry in sorted(path.iterdir()):
        m = _NAME.match(entry.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"two migrations with version {version}: {found[version].name}, {entry.name}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


@dataclass(frozen=True)
class MigrationReport:
    """What a run did."""

    applied: tuple[int, ...]
    current: int


async def _rows(conn: txpostgres.Connection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cursor = await conn.runQuery(sql, params)
    return list(cursor or [])


async def migrate(dsn: str, directory: str | Path, reactor: Any) -> MigrationReport:
    """Apply the pending migrations of ``directory`` to the database at ``dsn``."""
    migrations = load_migrations(directory)
    known = {m.version: m for m in migrations}
    conn = txpostgres.Connection(reactor)
    await conn.connect(dsn, cursor_factory=psycopg2.extras.RealDictCursor)
    try:
        await conn.runOperation("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            return await _migrate_locked(conn, migrations, known)
        finally:
            await conn.runOperation("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    finally:
        conn.close()


async def _migrate_locked(conn: txpostgres.Connection, migrations: list[Migration],
                          known: dict[int, Migration]) -> MigrationReport:
    await conn.runOperation(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY,"
        " name text NOT NULL,"
        " checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {r["version"]: r for r in await _rows(conn, "SELECT version, name, checksum FROM schema_migrations")}
    newer = sorted(v for v in applied if v not in known and v > max(known, default=0))
    if newer:
        raise MigrationError(
            f"the database schema is at version {max(applied)}, newer than this dhis2gw knows "
            f"({max(known, default=0)}); refusing to start (upgrade dhis2gw or restore the database)"
        )
    for version, row in applied.items():
        m = known.get(version)
        if m is None:
            raise MigrationError(f"migration {version} ({row['name']}) is applied but its file is missing")
        if m.checksum != row["checksum"]:
            raise MigrationError(f"migration {m.name} was changed after it was applied (checksum mismatch)")
    done: list[int] = []
    for m in migrations:
        if m.version in applied:
            continue

        def apply(cursor: Any, m: Migration = m) -> Any:
            d = cursor.execute(m.sql)
            d.addCallback(lambda _: cursor.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (m.version, m.name, m.checksum)))
            return d

        try:
            await conn.runInteraction(apply)
        except Exception as e:
            raise MigrationError(f"migration {m.name} failed: {str(e).strip()}") from e
        log.info("Applied migration {name}", name=m.name)
        done.append(m.version)
    current = max([*applied, *done], default=0)
    return MigrationReport(tuple(done), current)


async def schema_version(dsn: str, reactor: Any) -> int:
    """Return the highest applied migration version (0 for an empty database)."""
    conn = txpostgres.Connection(reactor)
    await conn.connect(dsn, cursor_factory=psycopg2.extras.RealDictCursor)
    try:
        rows = await _rows(conn, "SELECT to_regclass('schema_migrations') AS t")
        if not rows or rows[0]["t"] is None:
            return 0
        rows = await _rows(conn, "SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
        return int(rows[0]["v"])
    finally:
        conn.close()
