"""Latency of filtered ``GET /api/v2/logs`` first pages on a table of 1,000,000 submissions.

Run:  .venv/bin/python -m tests.bench.bench_logs [--rows 1000000] [--repeat 7]
      (the issue's figure: --rows 100000; "no filter, page 1" is the baseline of the same run)

Makes a fresh migrated database on the test PostgreSQL (tests/support/services.py), fills
``submissions`` with one INSERT … SELECT over generate_series (statuses, kinds, destinations,
50 submitters, a year of timestamps, idempotency keys, error texts, 2,000 facilities of the org-unit
cache × 12 periods × 2 data sets in the prepared payload), ANALYZEs it, starts a whole
gateway in this process (role ``api``) and times each query over HTTP (median and max of
``--repeat`` runs after one warm-up). Then prints PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) of the list
and count statements of a few filters, to show which indexes serve them. Not a test: the
figures depend on the machine and whatever else runs on it.
"""
from __future__ import annotations

import json
import time
from typing import Any

from tests.bench.gateway_timing import bench_parser, filled_database, print_timings, react_for, time_gateway_queries

QUERIES = (
    ("no filter, page 1", ""),
    ("status=failed", "status=failed"),
    ("status=failed,rejected + month", "status=failed,rejected&from=2024-03-01&to=2024-03-31"),
    ("destination=cc1 + status=delivered", "destination=cc1&status=delivered"),
    ("user=bench_user_7", "user=bench_user_7"),
    ("kind=tracker + from/to week", "kind=tracker&from=2024-06-01&to=2024-06-07"),
    ("q=<idempotency key>", "q=key-424242"),
    ("q=<error words>", "q=NullPointer"),
    ("status=delivered page 5", "status=delivered&page=5"),
    ("status=delivered, no total", "status=delivered&with_total=false"),
    ("user + status + date", "user=bench_user_3&status=delivered&from=2024-02-01&to=2024-02-29"),
    ("org_unit=<UID>", "org_unit=F000000077A"),
    ("org_unit=<code>", "org_unit=FAC-0077"),
    ("period=202403", "period=202403"),
    ("data_set=<UID>", "data_set=uFaVMlw4qxK"),
    ("org_unit + period", "org_unit=FAC-0077&period=202403"),
    ("data_set + period + status", "data_set=uFaVMlw4qxK&period=202403&status=rejected"),
    ("q=<org unit code>", "q=FAC-0077"),
    ("q=<words of an org unit name>", "q=Kaliro%2077%20HC"),
    ("q=<period>", "q=202403"),
)

FILL = """
INSERT INTO submissions (uid, kind, destination, submitter_id, endpoint, idempotency_key, payload, dhis2_payload,
                         status,
                         attempts, created_at, updated_at, finished_at, error, value_count)
SELECT 'X' || lpad(g::text, 10, '0'),
       CASE WHEN g %% 5 = 0 THEN 'tracker' ELSE 'aggregate' END,
       CASE WHEN g %% 10 = 3 THEN 'cc1' ELSE 'main' END,
       (SELECT min(id) FROM users) + (g %% 50),
       CASE WHEN g %% 5 = 0 THEN '/api/v2/tracker' ELSE '/api/v2/aggregate' END,
       CASE WHEN g %% 2 = 0 THEN 'key-' || g END,
       '{"orgUnit": "g8xY5g6WgXl", "period": "202401", "dataValues": {"ANC1": 1}}'::jsonb,
       jsonb_build_object('orgUnit', 'F' || lpad((g %% 2000)::text, 9, '0') || 'A',
                          'period', '2024' || lpad((1 + (g / 2000) %% 12)::text, 2, '0'),
                          'dataSet', CASE WHEN g %% 7 = 0 THEN 'pBOMPrpg1QX' ELSE 'uFaVMlw4qxK' END,
                          'dataValues', jsonb_build_array(jsonb_build_object('dataElement', 'Re46C6Apebu',
                                                                             'value', '1'))),
       (ARRAY['delivered','delivered','delivered','delivered','delivered','delivered','delivered',
              'delivered','delivered','delivered','delivered','delivered','delivered','delivered',
              'partial','rejected','failed','queued','retrying','delivered'])[1 + g %% 20],
       1 + g %% 3,
       timestamptz '2024-01-01T00:00:00+03:00' + (g * interval '31.5 seconds'),
       timestamptz '2024-01-01T00:00:00+03:00' + (g * interval '31.5 seconds'),
       timestamptz '2024-01-01T00:00:00+03:00' + (g * interval '31.5 seconds'),
       CASE (1 + g %% 20) WHEN 16 THEN 'E7630 value not valid for data element ' || (g %% 997)
                         WHEN 17 THEN 'HTTP 500 from DHIS2: NullPointerException at ' || (g %% 991) END,
       1
FROM generate_series(1, %s) g
"""


def fill(dsn: str, rows: int) -> float:
    """Create users and ``rows`` submissions; return seconds taken (blocking, before the reactor)."""
    import psycopg2

    started = time.monotonic()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("INSERT INTO users (uid, username, role, password_hash) SELECT 'U' || lpad(g::text, 10, '0'),"
                    " 'bench_user_' || g, 'submitter', 'x' FROM generate_series(0, 49) g")
        cur.execute("INSERT INTO organisation_units (uid, code, name, level, path)"
                    " SELECT 'F' || lpad(g::text, 9, '0') || 'A', 'FAC-' || lpad(g::text, 4, '0'),"
                    " 'Kaliro ' || g || ' HC III', 4, '/F' || g FROM generate_series(0, 1999) g")
        cur.execute(FILL, (rows,))
        cur.execute("VACUUM ANALYZE submissions")
    conn.close()
    return time.monotonic() - started


def explain(dsn: str, tz: Any) -> None:
    """Print the plans of the list and count statements for a few filters."""
    import psycopg2

    from dhis2gw.operations.filters import parse_filter
    from dhis2gw.storage.logs import where_clause
    from dhis2gw.storage.submissions import SUMMARY_COLUMNS

    conn = psycopg2.connect(dsn)
    for label, query in (QUERIES[2], QUERIES[3], QUERIES[4], QUERIES[6], QUERIES[7], QUERIES[0]):
        values: dict[str, list[str]] = {}
        for pair in filter(None, query.split("&")):
            k, v = pair.split("=", 1)
            values.setdefault(k, []).extend(v.split(",") if k not in ("q", "from", "to") else [v])
        f = parse_filter(lambda name, values=values: values.get(name, []), tz)
        where, params = where_clause(f)
        for kind, sql, p in (
                ("list", f"SELECT {SUMMARY_COLUMNS} FROM submissions WHERE ({where})"
                         " ORDER BY created_at DESC, id DESC LIMIT 21 OFFSET 0", params),
                ("count (bounded, as the API runs it)",
                 f"SELECT count(*) FROM (SELECT 1 FROM submissions WHERE {where} LIMIT %s) s",
                 [*params, (1000 if f.q else 100_000) + 1])):
            with conn.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, p)
                plan = [r[0] for r in cur.fetchall()]
            print(f"\n--- EXPLAIN {kind}: {label}")
            print("\n".join(plan))
    conn.close()


def _total(body: bytes) -> int:
    """The ``total`` of a ``GET /logs`` answer (-1 when it was not counted)."""
    total = json.loads(body)["total"]
    return total if total is not None else -1


def main() -> None:
    """Entry point."""
    import zoneinfo

    args = bench_parser(__doc__).parse_args()
    dsn = filled_database(f"{args.rows:,} submissions", lambda dsn: fill(dsn, args.rows))
    queries = [(label, "/api/v2/logs?page_size=20&" + query) for label, query in QUERIES]
    results = react_for(lambda reactor: time_gateway_queries(reactor, dsn, queries, args.repeat, _total))
    print_timings(f"GET /api/v2/logs (page_size=20), {args.rows:,} rows, {args.repeat} runs each over HTTP",
                  results, "total", 42)
    explain(dsn, zoneinfo.ZoneInfo("Africa/Kampala"))


if __name__ == "__main__":
    main()
