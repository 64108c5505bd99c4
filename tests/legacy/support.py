"""Helpers for the import-legacy tests: a database in the Go dhis2gw's schema, seeded rows, the CLI.

``legacy_database(upto)`` creates an empty database and applies the original's migrations
000001..``upto`` from ``original_schema.sql``. ``seed_*`` write rows the way the original did.
``run_import`` runs ``python -m dhis2gw.cli import-legacy`` in a subprocess (the real command,
its own reactor) against the test services.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import psycopg2

from tests.support.services import ROOT, create_database, test_environ

SCHEMA = Path(__file__).with_name("original_schema.sql")
LEGACY_TZ = "Africa/Kampala"
ORIGINAL_STATUSES = ("queued", "failed", "SUCCESS", "WARNING", "ERROR", "OK", "")


def legacy_database(upto: int = 7) -> str:
    """A fresh database at the original's migration ``upto`` (1..7)."""
    dsn = create_database()
    parts = re.split(r"^-- migration (\d{6})\s*$", SCHEMA.read_text(), flags=re.M)
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        for number, body in zip(parts[1::2], parts[2::2]):
            if int(number) <= upto:
                cur.execute(body)
    conn.close()
    return dsn


def connect(dsn: str) -> Any:
    """An autocommit psycopg2 connection."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def bcrypt_hash(password: str) -> str:
    """A hash as the original stored it (Go's bcrypt / pgcrypto write ``$2a$``)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2a$", 1)


def seed_user(conn: Any, username: str, password: str, *, uid: str = "", admin: bool = False,
              active: bool = True, email: str | None = None, telephone: str = "",
              first: str = "First", last: str = "Last") -> None:
    """A users row (role 'SMS User' or 'Administrator', as the original needed one)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (uid, user_role, username, password, firstname, lastname, telephone, email,"
            " is_active, is_admin_user, last_login)"
            " SELECT %s, id, %s, %s, %s, %s, %s, %s, %s, %s, '2025-03-01T10:00:00+03' FROM user_roles WHERE name = %s",
            (uid, username, bcrypt_hash(password), first, last, telephone, email, active, admin,
             "Administrator" if admin else "SMS User"))


def seed_mapping(conn: Any, code: str, dataelement: str, coc: str | None = None, *, source: str = "default",
                 instance: str = "default", what: str = "de", name: str = "", **extra: str) -> int:
    """A dhis2_mappings row as the original's import wrote it; returns its id."""
    columns = {"code": code, "name": name or code, "dataelement": dataelement, "category_option_combo": coc,
               "source_name": source, "instance_name": instance, "what": what, **extra}
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO dhis2_mappings ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
                    " RETURNING id", list(columns.values()))
        return int(cur.fetchone()[0])


def legacy_log_row(i: int, status: str, base: datetime) -> dict[str, Any]:
    """What the original wrote for submission ``i`` in ``status`` (payload, dhis2_payload, response…)."""
    payload = {"orgUnit": "ty5AJ6ZU5f7", "period": f"2024{(i % 12) + 1:02d}", "dataSet": "uFaVMlw4qxK",
               "dataValues": {"OPD": i, "ANC1": str(i % 7)}}
    submitted = base + timedelta(minutes=i)
    row: dict[str, Any] = {"payload": payload, "status": status, "submitted_at": submitted, "task_id": f"task-{i}",
                           "last_attempt_at": None, "response": None, "errors": None, "dhis2_payload": None}
    if status != "queued":
        row["last_attempt_at"] = submitted + timedelta(seconds=3)
        row["dhis2_payload"] = json.dumps({
            "dataSet": "uFaVMlw4qxK", "completeDate": submitted.strftime("%Y-%m-%d"), "period": payload["period"],
            "orgUnit": "ty5AJ6ZU5f7", "dataValues": [{"dataElement": "Re46C6Apebu", "value": str(i)},
                                                     {"dataElement": "sHyMCqP5u8T", "value": str(i % 7)}]})
    if status == "failed":
        row["errors"] = "dhis2 error response: 409 Conflict"
    elif status in ("SUCCESS", "WARNING", "ERROR", "OK"):
        row["response"] = json.dumps({"responseType": "ImportSummary", "status": status,
                                      "importCount": {"imported": 2, "updated": 0, "ignored": 0, "deleted": 0},
                                      "conflicts": [{"object": "x", "value": "bad"}] if status == "WARNING" else []})
    return row


def seed_log(conn: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert submission_log rows (times written as local TIMESTAMPs, like the Go service); return ids."""
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        result = execute_values(
            cur, "INSERT INTO submission_log (submitted_at, payload, status, last_attempt_at, task_id, response,"
            " errors, dhis2_payload) VALUES %s RETURNING id",
            [(r["submitted_at"], json.dumps(r["payload"]), r["status"], r["last_attempt_at"], r["task_id"],
              r["response"], r["errors"], r["dhis2_payload"]) for r in rows], page_size=1000, fetch=True)
    return [r[0] for r in result]


def run_import(target_dsn: str, legacy_dsn: str, workdir: Path, *extra: str, prefix: str = "legacytest",
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``dhis2gw import-legacy --from legacy_dsn`` into ``target_dsn`` (a subprocess); returns its result."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DHIS2GW_", "dhis2_", "cc_dhis2"))}
    environ.update(test_environ(target_dsn, prefix, DISPATCHER2_TIMEZONE=LEGACY_TZ, **(env or {})))
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "admin")])
    return subprocess.run(
        [sys.executable, "-m", "dhis2gw.cli", "import-legacy", "--from", legacy_dsn,
         "--servers-out", str(workdir / "servers.yml"), "--env-out", str(workdir / "servers.env"), *extra],
        cwd=str(workdir), env=environ, capture_output=True, text=True, timeout=300)
