"""``dhis2gw import-legacy`` end to end: a database in the Go dhis2gw's schema into a new gateway's."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2.extras
import yaml
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.config import load_config
from tests.legacy.support import (
    LEGACY_TZ,
    ORIGINAL_STATUSES,
    connect,
    legacy_database,
    legacy_log_row,
    run_import,
    seed_log,
    seed_mapping,
    seed_user,
)
from tests.support.services import MIGRATIONS, create_database, migrated_database, test_environ

PER_STATUS = 1000
EMR_TOKEN = "a3f1" * 10
EXPECTED_STATUS = {"queued": "failed", "failed": "failed", "SUCCESS": "delivered", "OK": "delivered",
                   "WARNING": "partial", "ERROR": "rejected", "": "failed"}


def _rows(dsn: str, query: str, params: Any = ()) -> list[dict[str, Any]]:
    conn = connect(dsn)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(query, params)
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


class ImportLegacyTests(SynchronousTestCase):
    """A Go dhis2gw database at migration 000007 with users, mappings, servers and 7,000 log rows."""

    def setUp(self) -> None:
        self.legacy = legacy_database(7)
        self.target = migrated_database()
        self.workdir = Path(tempfile.mkdtemp(prefix="legacy-import-"))
        conn = connect(self.legacy)
        seed_user(conn, "emr", "Emr-Password-1", uid="uEmrSystem1", email="emr@example.org", telephone="+25670000",
                  first="Electronic", last="Records")
        seed_user(conn, "manager", "Manager-Password-1", uid="uManager001", admin=True)
        seed_user(conn, "retired", "Retired-Password-1", active=False, first="", last="")  # uid '' → a new one
        with conn.cursor() as cur:  # as getToken wrote them: 40 hex characters, expiry never checked
            cur.execute("INSERT INTO user_apitoken (user_id, token, is_active, expires_at)"
                        " SELECT id, %s, true, now() + interval '200 days' FROM users WHERE username = 'emr'"
                        " UNION ALL SELECT id, %s, false, now() + interval '200 days' FROM users WHERE username = 'emr'"
                        " UNION ALL SELECT id, %s, true, now() - interval '3 days' FROM users"
                        " WHERE username = 'manager'", (EMR_TOKEN, "0" * 40, "e" * 40))
        # mappings: the original's scope (default/default), a specific one, an org unit, a NULL COC, a dimension
        self.mapping_ids = [
            seed_mapping(conn, "OPD", "Re46C6Apebu", "HllvX50cXC0", dataset="uFaVMlw4qxK", description="OPD visits",
                         category_option="", category_combo="bjDvmb4bfuf", uid="mOPDdefault"),
            seed_mapping(conn, "ANC1", "sHyMCqP5u8T", None, dimension_type="attribution"),
            seed_mapping(conn, "OPD", "fBMbkOwHQxP", None, source="emr", instance="main"),
            seed_mapping(conn, "KAL-01", "", None, what="ou", source_orgunit="KAL-01", dest_orgunit="ty5AJ6ZU5f7"),
            seed_mapping(conn, "BAD", "Re46C6Apebu", None, what="xx"),
        ]
        with conn.cursor() as cur:
            cur.execute("INSERT INTO dhis2_mapping_dimension (mapping_id, source_field, category_option,"
                        " category_option_combo) VALUES (%s, 'Male', 'co1', 'coc1'), (%s, 'Female', 'co2', 'coc2')",
                        (self.mapping_ids[1], self.mapping_ids[1]))
            cur.execute("INSERT INTO servers (name, username, password, url, auth_method, system_type) VALUES"
                        " ('eIDSR', 'gw', 'eidsr secret', 'https://eidsr.example.org/api/dataValueSets',"
                        " 'Basic Auth', 'DHIS2'),"
                        " ('MFL', '', '', 'https://mfl.example.org/api/metadata', 'Token', 'DHIS2'),"
                        " ('base_OU', 'admin', 'district', 'https://hmis.example.org/api/metadata.json', 'Basic Auth',"
                        " 'DHIS2')")
            cur.execute("UPDATE servers SET auth_token = 'd2pat_mfl_token_123' WHERE name = 'MFL'")
        self.log = [legacy_log_row(i, status, datetime(2025, 1, 1, 8, 0))
                    for status in ORIGINAL_STATUSES for i in range(PER_STATUS)]
        self.log_ids = seed_log(conn, self.log)
        conn.close()

    def run_import(self, *extra: str) -> str:
        original_config = self.workdir / "original-dhis2gw.yml"
        original_config.write_text("api:\n  cc_dhis2_servers: eIDSR,nowhere\n  cc_dhis2_ougroup_add_servers: MFL\n")
        result = run_import(self.target, self.legacy, self.workdir, "--legacy-config", str(original_config), *extra)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_imports_every_row_and_a_second_run_changes_nothing(self) -> None:
        """Users, mappings, servers and every log row arrive with their fields; the second run changes nothing."""
        dry = self.run_import("--dry-run")
        self.assertIn("DRY RUN", dry)
        self.assertEqual(_rows(self.target, "SELECT count(*) AS n FROM submissions")[0]["n"], 0)
        self.assertFalse((self.workdir / "servers.yml").exists())

        first = self.run_import()
        self.assert_tallies(first, users="read 4 inserted 4 updated 0 unchanged 0 skipped 0",
                            user_apitoken="read 2 inserted 1 updated 0 unchanged 0 skipped 1",
                            dhis2_mappings="read 5 inserted 4 updated 0 unchanged 0 skipped 1",
                            dhis2_mapping_dimension="read 2 inserted 0 .* skipped 2",
                            servers="read 5 inserted 4 updated 0 unchanged 0 skipped 1",
                            submission_log="read 7000 inserted 7000 updated 0 unchanged 0")
        for said in ("of 'manager': expired on", "submission_log status 'queued': 1000 → failed",
                     "submission_log status 'WARNING': 1000 → partial",
                     "WARNING: user 'admin': the Go dhis2gw's seeded account still has its published password",
                     "skipped: dhis2_mappings: mapping", "unknown what 'xx'", "skipped: servers 'base_OU'",
                     "WARNING: api.cc_dhis2_servers names 'nowhere'",
                     "2000 submission(s) were queued or failed in the Go dhis2gw and are not delivered",
                     f"changes: {4 + 1 + 4 + 4 + 7000 + 2}"):
            self.assertIn(said, first)

        self.check_users()
        self.check_mappings()
        self.check_submissions()
        self.check_servers()

        before = self.snapshot()
        second = self.run_import()
        self.assertIn("changes: 0", second)
        self.assertNotIn("WARNING: user 'admin'", second)  # said once, when it was imported
        self.assert_tallies(second, submission_log="read 7000 inserted 0 updated 0 unchanged 7000",
                            users="read 4 inserted 0 updated 0 unchanged 4",
                            dhis2_mappings="read 5 inserted 0 updated 0 unchanged 4 skipped 1")
        self.assertEqual(self.snapshot(), before)

    def assert_tallies(self, summary: str, **tallies: str) -> None:
        """Each table's line of the summary reads its words and counts (``.*`` skips some), however spaced."""
        for table, tally in tallies.items():
            self.assertRegex(summary, r"\s+".join([table, *tally.split()]))

    def snapshot(self) -> Any:
        return (_rows(self.target, "SELECT * FROM users ORDER BY id"),
                _rows(self.target, "SELECT * FROM api_tokens ORDER BY id"),
                _rows(self.target, "SELECT * FROM dhis2_mappings ORDER BY id"),
                _rows(self.target, "SELECT * FROM submissions ORDER BY id"),
                _rows(self.target, "SELECT * FROM submission_events ORDER BY id"),
                (self.workdir / "servers.yml").read_text(), (self.workdir / "servers.env").read_text())

    def check_users(self) -> None:
        users = {u["username"]: u for u in _rows(self.target, "SELECT * FROM users")}
        self.assertEqual(set(users), {"admin", "emr", "manager", "retired"})
        emr = users["emr"]
        self.assertEqual((emr["uid"], emr["email"], emr["full_name"], emr["telephone"], emr["role"], emr["is_active"]),
                         ("uEmrSystem1", "emr@example.org", "Electronic Records", "+25670000", "submitter", True))
        self.assertTrue(emr["password_hash"].startswith("$2a$"))
        self.assertIsNone(emr["source_name"])
        self.assertEqual(emr["last_login_at"].isoformat(), "2025-03-01T07:00:00+00:00")
        self.assertEqual((users["manager"]["uid"], users["manager"]["role"]), ("uManager001", "admin"))
        self.assertEqual((users["retired"]["is_active"], users["retired"]["full_name"]), (False, None))
        self.assertRegex(users["retired"]["uid"], r"^[a-zA-Z][a-zA-Z0-9]{10}$")
        self.assertEqual((users["admin"]["role"], users["admin"]["is_active"]), ("admin", False))
        tokens = _rows(self.target, "SELECT user_id, token_hash, prefix, is_active, expires_at FROM api_tokens")
        self.assertEqual([(t["user_id"], t["token_hash"], t["prefix"], t["is_active"]) for t in tokens],
                         [(emr["id"], hashlib.sha256(EMR_TOKEN.encode()).hexdigest(), EMR_TOKEN[:8], True)])
        self.assertIsNotNone(tokens[0]["expires_at"])

    def check_mappings(self) -> None:
        rows = {(m["code"], m["source_name"]): m for m in _rows(self.target, "SELECT * FROM dhis2_mappings")}
        self.assertEqual(set(rows), {("OPD", "default"), ("ANC1", "default"), ("OPD", "emr"), ("KAL-01", "default")})
        opd = rows[("OPD", "default")]
        self.assertEqual({k: opd[k] for k in ("uid", "what", "name", "description", "dataset", "dataelement",
                                                "category_option_combo", "category_option", "category_combo",
                                                "instance_name", "source_orgunit", "destination_orgunit",
                                                "dimension_type")},
                         {"uid": "mOPDdefault", "what": "de", "name": "OPD", "description": "OPD visits",
                          "dataset": "uFaVMlw4qxK", "dataelement": "Re46C6Apebu",
                          "category_option_combo": "HllvX50cXC0", "category_option": "",
                          "category_combo": "bjDvmb4bfuf", "instance_name": "default",
                          "source_orgunit": "", "destination_orgunit": "", "dimension_type": "none"})
        anc = rows[("ANC1", "default")]
        self.assertEqual((anc["category_option_combo"], anc["dimension_type"]), ("", "attribution"))
        self.assertEqual((rows[("OPD", "emr")]["instance_name"], rows[("OPD", "emr")]["dataelement"]),
                         ("main", "fBMbkOwHQxP"))
        kal = rows[("KAL-01", "default")]
        self.assertEqual((kal["what"], kal["source_orgunit"], kal["destination_orgunit"]),
                         ("ou", "KAL-01", "ty5AJ6ZU5f7"))

    def check_submissions(self) -> None:
        subs = {s["idempotency_key"]: s for s in _rows(self.target, "SELECT * FROM submissions")}
        events = {e["submission_id"]: e for e in _rows(self.target, "SELECT * FROM submission_events")}
        self.assertEqual(len(subs), len(self.log))
        self.assertEqual(len(events), len(self.log))
        zone = ZoneInfo(LEGACY_TZ)
        for legacy_id, legacy in zip(self.log_ids, self.log):
            sub = subs[f"legacy-{legacy_id}"]
            status = legacy["status"]
            self.assertEqual((sub["kind"], sub["destination"], sub["endpoint"], sub["submitter_id"]),
                             ("aggregate", "main", "/api/v2/aggregate", None))
            self.assertEqual(sub["status"], EXPECTED_STATUS[status], legacy_id)
            self.assertEqual(sub["payload"], legacy["payload"])
            self.assertEqual(sub["dhis2_payload"], json.loads(legacy["dhis2_payload"]) if legacy["dhis2_payload"]
                             else None)
            self.assertEqual(sub["response"], json.loads(legacy["response"]) if legacy["response"] else None)
            self.assertEqual(sub["created_at"], legacy["submitted_at"].replace(tzinfo=zone))
            attempted = legacy["last_attempt_at"]
            self.assertEqual(sub["last_attempt_at"], attempted.replace(tzinfo=zone) if attempted else None)
            self.assertEqual(sub["attempts"], 0 if status == "queued" else 1)
            self.assertIsNotNone(sub["finished_at"])
            self.assertEqual(sub["value_count"], 2)
            if status == "failed":
                self.assertEqual(sub["error"], "dhis2 error response: 409 Conflict")
            elif status == "queued":
                self.assertIn("still queued", sub["error"])
            elif status == "":
                self.assertIn("no DHIS2 status", sub["error"])
            else:
                self.assertIsNone(sub["error"])
                self.assertEqual(sub["import_count"], {"imported": 2, "updated": 0, "ignored": 0, "deleted": 0})
            self.assertEqual(sub["conflicts"], [{"object": "x", "value": "bad"}] if status == "WARNING" else None)
            event = events[sub["id"]]
            self.assertEqual((event["event"], event["status"], event["actor"]),
                             ("imported", sub["status"], "import-legacy"))
            self.assertIn(f"submission_log #{legacy_id} (status {status!r}, task {legacy['task_id']})",
                          event["detail"])
        self.assertEqual(sum(1 for s in subs.values() if s["org_unit"] == "ty5AJ6ZU5f7"), len(self.log))

    def check_servers(self) -> None:
        env_path = self.workdir / "servers.env"
        self.assertEqual(stat.S_IMODE(os.stat(env_path).st_mode), 0o600)
        fragment_text = (self.workdir / "servers.yml").read_text()
        for secret in ("eidsr secret", "d2pat_mfl_token_123", "foobar", "district"):
            self.assertNotIn(secret, fragment_text)
        fragment = yaml.safe_load(fragment_text)
        self.assertEqual(fragment["api"], {"cc_dhis2_servers": "eidsr", "cc_dhis2_ou_group_add_servers": "mfl"})
        self.assertEqual(fragment["servers"]["eidsr"], {"base_url": "https://eidsr.example.org", "auth_method": "basic",
                                                        "user": "gw"})
        self.assertEqual(fragment["servers"]["mfl"], {"base_url": "https://mfl.example.org", "auth_method": "pat"})
        self.assertEqual(fragment["servers"]["localhost"]["enabled"], False)
        self.assertNotIn("base_ou", fragment["servers"])
        env = dict(line.split("=", 1) for line in env_path.read_text().splitlines())
        self.assertEqual(env["DHIS2GW_SERVERS_EIDSR_PASSWORD"], '"eidsr secret"')
        self.assertEqual(env["DHIS2GW_SERVERS_MFL_PAT"], "d2pat_mfl_token_123")
        # The fragment plus the environment file is a configuration this gateway loads.
        config_path = self.workdir / "merged.yml"
        config_path.write_text(fragment_text)
        environ = test_environ(self.target, "x", DHIS2GW_MIGRATTIONS_DIR=str(MIGRATIONS),
                               DHIS2GW_SERVERS_EIDSR_PASSWORD="eidsr secret",
                               DHIS2GW_SERVERS_MFL_PAT="d2pat_mfl_token_123")
        config = load_config(str(config_path), environ)
        self.assertEqual(config.servers["eidsr"].password, "eidsr secret")
        self.assertEqual(config.servers["mfl"].pat, "d2pat_mfl_token_123")
        self.assertEqual(config.api.cc_dhis2_servers, ("eidsr",))


class OlderSchemaTests(SynchronousTestCase):
    """An installation still at migration 000004 (before mapping scopes, `what` and dimensions)."""

    def test_imports_what_an_older_schema_has(self) -> None:
        """Missing columns take the original's defaults: scope 'default', what 'de', no errors/dhis2_payload."""
        legacy = legacy_database(4)
        target = migrated_database()
        conn = connect(legacy)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO dhis2_mappings (name, code, dataelement) VALUES ('OPD', 'OPD', 'Re46C6Apebu')")
            cur.execute("INSERT INTO submission_log (payload, status) VALUES ('{\"orgUnit\": \"ty5AJ6ZU5f7\"}', 'OK')")
        conn.close()
        workdir = Path(tempfile.mkdtemp(prefix="legacy-import-"))
        result = run_import(target, legacy, workdir)
        self.assertEqual(result.returncode, 0, result.stderr)
        mapping = _rows(target, "SELECT code, what, source_name, instance_name, dimension_type FROM dhis2_mappings")
        self.assertEqual(mapping, [{"code": "OPD", "what": "de", "source_name": "default", "instance_name": "default",
                                    "dimension_type": "none"}])
        sub = _rows(target, "SELECT status, dhis2_payload, error FROM submissions")
        self.assertEqual(sub, [{"status": "delivered", "dhis2_payload": None, "error": None}])

    def test_usernames_differing_in_case_and_a_wrong_database(self) -> None:
        """'Bob' and 'bob' were two users there: the second is skipped and said; a non-dhis2gw database is refused."""
        legacy = legacy_database(7)
        target = migrated_database()
        conn = connect(legacy)
        seed_user(conn, "Bob", "Bob-Password-1")
        seed_user(conn, "bob", "Bob-Password-2")
        conn.close()
        workdir = Path(tempfile.mkdtemp(prefix="legacy-import-"))
        result = run_import(target, legacy, workdir)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("'bob' differs only in case from another user of the Go dhis2gw", result.stdout)
        users = _rows(target, "SELECT username FROM users WHERE username ILIKE 'bob'")
        self.assertEqual([r["username"] for r in users], ["Bob"])
        wrong = run_import(target, create_database(), workdir)  # an empty database
        self.assertEqual(wrong.returncode, 1)
        self.assertIn("none of the Go dhis2gw's tables", wrong.stderr)

    def test_unwritable_output_stops_before_anything_is_imported(self) -> None:
        """A --servers-out in a directory the command cannot write is refused first; the database stays empty."""
        legacy = legacy_database(7)
        target = migrated_database()
        workdir = Path(tempfile.mkdtemp(prefix="legacy-import-"))
        result = run_import(target, legacy, workdir, "--servers-out", "/no-such-directory/servers.yml")
        self.assertEqual(result.returncode, 1)
        self.assertIn("--servers-out: cannot write in /no-such-directory", result.stderr)
        self.assertEqual(_rows(target, "SELECT count(*) AS n FROM users")[0]["n"], 0)
