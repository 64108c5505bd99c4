"""Latency of the facility × period report (``GET /api/v2/reports/arrivals``) on 1,000,000 submissions.

Run:  .venv/bin/python -m tests.bench.bench_report [--rows 1000000] [--facilities 2000] [--repeat 7]

Makes a fresh migrated database on the test PostgreSQL, adds ``--facilities`` org units to the
org-unit cache, fills ``submissions`` with one INSERT … SELECT over generate_series (the
facilities × 12 monthly periods of 2024 × two data sets, several submissions per cell, statuses
mixed, some facilities silent), VACUUM ANALYZEs it, starts a whole gateway in this process (role
``api``) and times, over HTTP, the report for 12, 3 and 1 periods — next to a baseline measured
in the same run (``GET /health``, and the unfiltered first page of ``/logs``). Not a test: the
figures depend on the machine and whatever else runs on it.
"""
from __future__ import annotations

import time

from tests.bench.gateway_timing import bench_parser, filled_database, print_timings, react_for, time_gateway_queries

DS = "uFaVMlw4qxK"
FILL = """
INSERT INTO submissions (uid, kind, destination, endpoint, payload, dhis2_payload, status, created_at, value_count)
SELECT 'R' || lpad(g::text, 10, '0'), 'aggregate', 'main', '/api/v2/aggregate', '{}'::jsonb,
       jsonb_build_object('orgUnit', 'F' || lpad(((g::bigint * 7919) %% %(facilities)s)::text, 9, '0') || 'A',
                          'period', '2024' || lpad((1 + (g / %(facilities)s) %% 12)::text, 2, '0'),
                          'dataSet', CASE WHEN g %% 5 = 0 THEN 'pBOMPrpg1QX' ELSE 'uFaVMlw4qxK' END),
       (ARRAY['delivered','delivered','delivered','delivered','delivered','delivered','partial',
              'rejected','failed','queued'])[1 + g %% 10],
       timestamptz '2024-01-01T00:00:00+03:00' + g * interval '30 seconds', 1
FROM generate_series(1, %(rows)s) g
"""

QUERIES = (
    ("baseline: GET /health", "/health"),
    ("baseline: GET /api/v2/logs page 1", "/api/v2/logs?page_size=20"),
    ("report, 12 periods", "/api/v2/reports/arrivals?data_set=" + DS + "&period="
     + ",".join(f"2024{m:02d}" for m in range(1, 13))),
    ("report, 3 periods", f"/api/v2/reports/arrivals?data_set={DS}&period=202401,202402,202403"),
    ("report, 1 period", f"/api/v2/reports/arrivals?data_set={DS}&period=202406"),
)


def fill(dsn: str, rows: int, facilities: int) -> float:
    """Seed the org-unit cache and ``rows`` submissions; seconds taken (blocking, before the reactor)."""
    import psycopg2

    started = time.monotonic()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("INSERT INTO organisation_units (uid, code, name, level, path)"
                    " SELECT 'F' || lpad(g::text, 9, '0') || 'A', 'FAC-' || lpad(g::text, 4, '0'),"
                    " 'Facility ' || lpad(g::text, 4, '0') || ' HC III', 4, '/F' || g"
                    " FROM generate_series(0, %s) g", (facilities - 1,))
        cur.execute(FILL, {"rows": rows, "facilities": facilities})
        cur.execute("VACUUM ANALYZE submissions")
        cur.execute("VACUUM ANALYZE organisation_units")
    conn.close()
    return time.monotonic() - started


def main() -> None:
    """Entry point."""
    parser = bench_parser(__doc__)
    parser.add_argument("--facilities", type=int, default=2000)
    args = parser.parse_args()
    dsn = filled_database(f"{args.rows:,} submissions over {args.facilities:,} facilities",
                          lambda dsn: fill(dsn, args.rows, args.facilities))
    results = react_for(lambda reactor: time_gateway_queries(reactor, dsn, QUERIES, args.repeat, len))
    print_timings(f"{args.rows:,} submissions, {args.facilities:,} facilities, {args.repeat} runs each over HTTP",
                  results, "bytes", 36)

if __name__ == "__main__":
    main()
