"""Throughput of ``import-legacy`` on a large Go dhis2gw history.

Run:  .venv/bin/python -m tests.bench.bench_import_legacy [--rows 100000]

Makes a database in the original's schema (tests/legacy/original_schema.sql) with ``--rows``
``submission_log`` rows spread over every original status, and a fresh migrated gateway database,
then times ``import_legacy`` (the synchronous core of the command: read, convert, write, commit)
twice: the first run imports everything, the second finds it all and changes nothing. Not a test:
the figures depend on the machine and whatever else runs on it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path


def main() -> None:
    """Print rows/s of a first and a repeated import."""
    from dhis2gw.legacy.importer import import_legacy
    from tests.legacy.support import (
        LEGACY_TZ,
        ORIGINAL_STATUSES,
        connect,
        legacy_database,
        legacy_log_row,
        seed_log,
    )
    from tests.support.services import migrated_database

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    legacy = legacy_database(7)
    conn = connect(legacy)
    base = datetime(2024, 1, 1)
    for start in range(0, args.rows, 10_000):
        seed_log(conn, [legacy_log_row(i, ORIGINAL_STATUSES[i % len(ORIGINAL_STATUSES)], base)
                        for i in range(start, min(args.rows, start + 10_000))])
    conn.close()
    target = migrated_database()
    workdir = Path(tempfile.mkdtemp(prefix="bench-legacy-"))
    for label in ("first run", "second run"):
        began = time.perf_counter()
        summary = import_legacy(legacy, target, timezone=LEGACY_TZ, servers_out=str(workdir / "s.yml"),
                                env_out=str(workdir / "s.env"))
        took = time.perf_counter() - began
        counts = summary.tables["submission_log"]
        print(f"{label}: {counts.read} rows read, {counts.inserted} inserted in {took:.1f} s "
              f"({counts.read / took:,.0f} rows/s), changes {summary.changes}")


if __name__ == "__main__":
    main()
