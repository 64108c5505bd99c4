"""The ``dhis2gw import-legacy`` command (argument parsing lives in ``dhis2gw.cli``).

Order: migrate this gateway's database (like ``dhis2gw migrate``), run the synchronous import
(:func:`dhis2gw.legacy.importer.import_legacy`), then with ``--requeue`` (and not ``--dry-run``)
start a database pool and Redis in a reactor and requeue the undelivered rows.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dhis2gw.legacy.importer import ImportSummary


def add_arguments(sub: Any) -> None:
    """Register the subcommand on the CLI's subparsers."""
    p = sub.add_parser("import-legacy", help="import users, mappings, servers and submission history of a Go dhis2gw")
    p.add_argument("--from", dest="legacy_uri", required=True, metavar="URI",
                   help="PostgreSQL URI of the Go dhis2gw's database (read only)")
    p.add_argument("--dry-run", action="store_true", help="report what would be imported; write nothing")
    p.add_argument("--requeue", action="store_true",
                   help="deliver the submissions that were queued or failed in the Go dhis2gw")
    p.add_argument("--legacy-timezone", default=None,
                   help="zone of the Go dhis2gw's timestamps (default: server.timezone)")
    p.add_argument("--legacy-config", default=None, metavar="FILE",
                   help="the Go dhis2gw's configuration file, for its api.cc_dhis2_* server lists")
    p.add_argument("--servers-out", default="dhis2gw-servers-from-go.yml",
                   help="YAML fragment with the servers: entries (default: %(default)s)")
    p.add_argument("--env-out", default="dhis2gw-servers-from-go.env",
                   help="environment file with the servers' passwords, mode 0600 (default: %(default)s)")
    p.add_argument("--config", "-c", dest="sub_config", default=None)


def run(args: argparse.Namespace, config: Any, react: Any) -> int:
    """Run the import with ``config`` (embedded servers already started); print the summary.

    ``react`` (``dhis2gw.cli._react``) runs ``main`` in a fresh reactor and exits the process.
    """
    from dhis2gw.legacy.importer import import_legacy
    from dhis2gw.runtime.commands import migrate_or_exit

    async def main(reactor: Any) -> None:
        await migrate_or_exit(config, reactor)
        try:
            summary = import_legacy(args.legacy_uri, config.database.dsn(),
                                    timezone=args.legacy_timezone or config.server.timezone,
                                    cc_lists=_cc_lists(args.legacy_config, config),
                                    servers_out=args.servers_out, env_out=args.env_out, dry_run=args.dry_run)
        except Exception as e:  # noqa: BLE001 - psycopg2 errors reaching the Go database: one clear line
            sys.stderr.write(f"dhis2gw: import-legacy failed: {str(e).strip()}\n")
            raise SystemExit(1) from None
        if args.requeue and not args.dry_run:
            await _requeue(reactor, config, summary)
        print("\n".join(summary.lines()))

    react(main)  # exits the process with main's outcome
    return 0


def _cc_lists(path: Any, config: Any) -> dict[str, tuple[str, ...]]:
    """CC lists from the original's configuration file (raw: its names need not be servers here yet)."""
    from dhis2gw.legacy.importer import CC_KEYS, cc_lists_from

    if path:
        import yaml

        with open(path, encoding="utf-8") as f:
            return cc_lists_from(yaml.safe_load(f))
    return {key: tuple(getattr(config.api, key, ())) for key in CC_KEYS if getattr(config.api, key, ())}


async def _requeue(reactor: Any, config: Any, summary: ImportSummary) -> None:
    from dhis2gw.legacy.requeue import requeue_imported
    from dhis2gw.queue.connection import RedisConnections
    from dhis2gw.queue.feed import SubmissionQueue
    from dhis2gw.storage.database import Database

    db = Database(reactor, config.database.dsn(), size=1, max_start_delay=2)
    redis = RedisConnections(reactor, config.server.redis_host, config.server.redis_port, config.server.redis_db,
                             timeout=config.queue.redis_timeout)
    db.startService()
    redis.startService()
    try:
        await db.started
        queue = SubmissionQueue(redis, reactor, config.queue.prefix, config.queue.lease_seconds)
        ids = [new_id for _, new_id, _ in summary.undelivered]
        summary.requeue = await requeue_imported(reactor, db, queue, config, ids)
    finally:
        await redis.stopService()
        await db.stopService()
