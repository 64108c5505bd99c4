"""What the one-off commands (migrate, createuser, import-legacy) share.

Each runs against the servers the configuration names (starting the embedded ones it needs, or
using those of a gateway already running on the state directory), brings the database to this
release's schema first, and ends with one line an operator can act on instead of a traceback
when the database cannot be used.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import psycopg2

from dhis2gw.storage.migrations import MigrationError, MigrationReport, migrate


def database_problem(config: Any, error: BaseException) -> NoReturn:
    """Exit with one line naming the database (password hidden) and why it did not answer."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    sys.stderr.write(f"dhis2gw: cannot use the database {config.database.redacted_uri}: {reason}\n")
    raise SystemExit(1)


async def migrate_or_exit(config: Any, reactor: Any) -> MigrationReport:
    """Apply the migrations not yet applied; exit with one line when that cannot be done."""
    try:
        return await migrate(config.database.dsn(), config.server.migrations_path, reactor)
    except MigrationError as e:
        sys.stderr.write(f"dhis2gw: {e}\n")
        raise SystemExit(1) from None
    except psycopg2.Error as e:
        database_problem(config, e)


async def migrate_and_report(config: Any, reactor: Any) -> None:
    """``dhis2gw migrate``: apply the migrations and print the schema version."""
    report = await migrate_or_exit(config, reactor)
    applied = ", ".join(str(v) for v in report.applied) or "none"
    print(f"schema at version {report.current} (applied now: {applied})")


async def create_user(config: Any, reactor: Any, username: str, role: str, password: str,
                      email: str | None) -> None:
    """``dhis2gw createuser``: migrate, create the user and print the confirmation.

    A refused user (unknown role, taken name, weak password) exits with status 2 and one line.
    """
    from dhis2gw.runtime.cli_users import create_user_command
    from dhis2gw.storage.database import Database, DatabaseUnavailable

    await migrate_or_exit(config, reactor)
    db = Database(reactor, config.database.dsn(), size=1, max_start_delay=2)
    db.startService()
    try:
        await db.started
        message = await create_user_command(db, username, role, password, email=email,
                                            min_length=config.auth.password_min_length)
    except ValueError as e:
        sys.stderr.write(f"dhis2gw: {e}\n")
        raise SystemExit(2) from None
    except (psycopg2.Error, DatabaseUnavailable) as e:
        database_problem(config, e)
    finally:
        await db.stopService()
    print(message)


@contextmanager
def embedded_servers(config: Any) -> Iterator[Any]:
    """``config`` with the embedded servers it names running; those this command started stop on exit."""
    from dhis2gw.runtime.embedded import start_embedded

    config, servers = start_embedded(config, exclusive=False)
    try:
        yield config
    finally:
        for server in reversed(servers):
            server.stop()
