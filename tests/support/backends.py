"""The real PostgreSQL and Redis of the test services, opened for one trial test case.

``open_database`` and ``open_redis`` start a client on the global reactor and register on the test
case the cleanups that stop it and remove what the test made (its Redis keys; the database is
dropped at exit). ``run_sql`` is the blocking way to look at or seed a database around that.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg2
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw.queue.connection import RedisConnections
from dhis2gw.storage.database import Database
from tests.support.services import delete_redis_prefix, migrated_database, redis_prefix, services


async def open_database(case: TestCase, size: int = 4) -> tuple[str, Database]:
    """A fresh migrated database and a started pool on it: ``(dsn, db)``."""
    dsn = migrated_database()
    db = Database(reactor, dsn, size=size)
    db.startService()
    await db.started
    case.addCleanup(db.stopService)
    return dsn, db


def open_redis(case: TestCase) -> tuple[RedisConnections, str]:
    """Started connections to the test Redis and a key prefix of this test alone: ``(redis, prefix)``."""
    svc = services()
    redis = RedisConnections(reactor, svc.redis_host, svc.redis_port, timeout=5)
    redis.startService()
    case.addCleanup(redis.stopService)
    prefix = redis_prefix()
    case.addCleanup(delete_redis_prefix, prefix)
    return redis, prefix


def run_sql(dsn: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement in a transaction of its own (blocking); the rows it returns (none for a write)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()
