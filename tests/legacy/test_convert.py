"""The pure conversions of import-legacy: statuses, users, mappings, log rows, servers."""
from __future__ import annotations

from datetime import UTC, datetime

import yaml
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.legacy import convert
from dhis2gw.legacy.importer import cc_lists_from
from tests.legacy.support import bcrypt_hash


class ConvertTests(SynchronousTestCase):
    """Row by row, what the original wrote becomes what this gateway keeps."""

    def test_statuses(self) -> None:
        """DHIS2's words map to final states; queued, empty and unknown ones become failed with a reason."""
        self.assertEqual({s: convert.map_status(s)[0] for s in ("SUCCESS", "OK", "WARNING", "ERROR", "failed")},
                         {"SUCCESS": "delivered", "OK": "delivered", "WARNING": "partial", "ERROR": "rejected",
                          "failed": "failed"})
        for status, words in (("queued", "never delivered"), ("", "no DHIS2 status"), (None, "no DHIS2 status"),
                              ("archived", "unknown status 'archived'")):
            mapped, note = convert.map_status(status)
            self.assertEqual(mapped, "failed")
            self.assertIn(words, note or "")

    def test_users(self) -> None:
        """Names, role and uid carry over; a non-bcrypt password is skipped; the seeded admin is deactivated."""
        row, reason, warning = convert.user_row({"username": " nurse ", "password": bcrypt_hash("x"), "uid": "bad",
                                                 "firstname": "Ann", "lastname": "", "email": "", "telephone": "",
                                                 "is_active": True, "is_admin_user": False})
        assert row is not None
        self.assertEqual((row["username"], row["uid"], row["full_name"], row["email"], row["role"], reason, warning),
                         ("nurse", None, "Ann", None, "submitter", None, None))
        self.assertEqual(convert.user_row({"id": 3, "username": "x", "password": "plain"})[1],
                         "user 'x': the password is not a bcrypt hash")
        admin, _, warning = convert.user_row({"username": "admin", "password": bcrypt_hash("changed-it"),
                                              "is_admin_user": True, "is_active": True})
        assert admin is not None
        self.assertEqual((admin["is_active"], admin["role"]), (False, "admin"))
        self.assertNotIn("@dm1n", warning or "")
        self.assertIn("seeded account", warning or "")

    def test_mappings(self) -> None:
        """what defaults to de, ou rows take their source org unit as code, bad rows are skipped with a reason."""
        row, _ = convert.mapping_row({"id": 1, "code": "C", "what": None, "dataelement": "Re46C6Apebu",
                                      "category_option_combo": None, "source_name": None, "instance_name": None})
        assert row is not None
        self.assertEqual((row["what"], row["category_option_combo"], row["source_name"], row["instance_name"],
                          row["dimension_type"]), ("de", "", "default", "default", "none"))
        ou, _ = convert.mapping_row({"id": 2, "code": "", "what": "OU", "source_orgunit": "K-1",
                                     "dest_orgunit": "ty5AJ6ZU5f7"})
        assert ou is not None
        self.assertEqual((ou["code"], ou["what"], ou["destination_orgunit"]), ("K-1", "ou", "ty5AJ6ZU5f7"))
        self.assertEqual(convert.mapping_row({"id": 3, "code": "", "dataelement": "x"})[1], "mapping #3: no code")
        self.assertIn("no dataelement", convert.mapping_row({"id": 4, "code": "A", "dataelement": ""})[1] or "")

    def test_log_row_with_text_columns(self) -> None:
        """A response that is not JSON is kept as a JSON string; a 2.38+ WebMessage gives its importCount."""
        when = datetime(2025, 1, 1, tzinfo=UTC)
        row = convert.submission_row({"id": 9, "submitted_at": when, "payload": {"dataValues": {"A": 1}},
                                      "status": "OK", "response": '{"status": "OK", "response": {"importCount":'
                                      ' {"imported": 1}, "conflicts": [{"object": "A"}]}}',
                                      "dhis2_payload": "not json", "errors": "", "task_id": None})
        self.assertEqual((row["status"], row["import_count"], row["conflicts"], row["dhis2_payload"], row["error"]),
                         ("delivered", {"imported": 1}, [{"object": "A"}], None, None))
        self.assertEqual((row["value_count"], row["idempotency_key"], row["finished_at"]), (1, "legacy-9", when))
        odd = convert.submission_row({"id": 10, "submitted_at": when, "payload": {}, "status": "ERROR",
                                      "response": "<html>login</html>"})
        self.assertEqual(odd["response"], "<html>login</html>")

    def test_servers(self) -> None:
        """Names become keys, URLs instance roots, secrets environment variables; seeds are disabled."""
        taken: set[str] = set()
        self.assertEqual([convert.server_name(n, taken) for n in ("eIDSR", "e idsr", "main", "Main")],
                         ["eidsr", "e_idsr", "main_legacy", "main_legacy_2"])
        self.assertEqual(convert.base_url("https://h.org/dhis/api/40/dataValueSets?x=1"), "https://h.org/dhis")
        entry, secrets, notes = convert.server_entry(
            {"name": "x", "url": "https://x.org/api/metadata", "username": "u", "password": "p w",
             "auth_method": "Basic Auth", "auth_token": ""}, "x-1")
        self.assertEqual((entry, secrets), ({"base_url": "https://x.org", "auth_method": "basic", "user": "u"},
                                            {"DHIS2GW_SERVERS_X_1_PASSWORD": "p w"}))
        seeded, secrets, notes = convert.server_entry(
            {"name": "dhis2", "url": "http://localhost/api/dataValueSets", "username": "admin", "password": "district",
             "auth_method": "Token", "auth_token": "d2pat_x"}, "dhis2")
        self.assertEqual((seeded["auth_method"], seeded["enabled"], secrets),
                         ("pat", False, {"DHIS2GW_SERVERS_DHIS2_PAT": "d2pat_x"}))
        self.assertIn("seeded", notes[-1])

    def test_cc_lists_from_the_original_file(self) -> None:
        """Comma strings, YAML lists and the sample's cc_dhis2_ougroup_add_servers spelling are read."""
        document = yaml.safe_load("api:\n  cc_dhis2_servers: 'a, b'\n  cc_dhis2_update_servers: [c]\n"
                                  "  cc_dhis2_ougroup_add_servers: d\n  cc_dhis2_create_servers: ''\n")
        self.assertEqual(cc_lists_from(document), {"cc_dhis2_servers": ("a", "b"), "cc_dhis2_update_servers": ("c",),
                                                   "cc_dhis2_ou_group_add_servers": ("d",)})
        self.assertEqual(cc_lists_from(None), {})

    def test_environment_file_quoting(self) -> None:
        """Plain values stay bare; others are double-quoted with \\ and " escaped, as a shell reads them back."""
        import subprocess

        from dhis2gw.legacy.importer import _env_quote

        self.assertEqual(_env_quote("d2pat_abc-1"), "d2pat_abc-1")
        value = 'pa ss"wo\\rd'
        quoted = _env_quote(value)
        self.assertEqual(quoted, '"pa ss\\"wo\\\\rd"')
        shell = subprocess.run(["sh", "-c", "V=" + quoted + '; printf %s "$V"'], capture_output=True, text=True)
        self.assertEqual(shell.stdout, value)
