"""A configuration file of the Go dhis2gw loads as it is (step 3 of docs/upgrade-from-go.md).

The key-by-key checks (aliases, typos, ignored keys) are
``tests/test_config.py::ValueHandlingTests::test_original_aliases``; this one loads a whole file
shaped like the original's sample, every section and key of reference §8.2, unchanged.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.config import load_config

ORIGINAL_FILE = """\
database:
  uri: "postgres://postgres:postgres@localhost/dhis2gw?sslmode=disable"
  db_host: localhost
  db_port: 5432
  db_username: postgres
  db_password: postgres
server:
  host: localhost
  http_port: 9090
  proxy_port: 9191
  redis_address: 127.0.0.1:6379
  redis_db: 5
  queue_prefix: ""
  max_retries: 3
  start_submission_period: "18"
  end_submission_period: "24"
  max_concurrent: 5
  skip_request_processing: false
  force_sync: false
  sync_on: true
  fake_sync_to_base_dhis2: false
  request_process_interval: 4
  dhis2_job_status_check_interval: 30
  templates_directory: ./templates
  static_directory: ./static
  logdir: /var/log/dhis2gw
  docs_directory: ./docs/md_docs
  migrations_dir: file:///usr/share/dhis2gw/db/migrations
  timezone: Africa/Kampala
  use_ssl: "true"
  ssl_client_certkey_file: ""
  ssl_server_certkey_file: ""
  ssl_trusted_cafile: ""
api:
  dhis2_country: Uganda
  dhis2_base_url: "https://hmis.example.org/api/"
  dhis2_user: admin
  dhis2_password: district
  dhis2_pat: ""
  save_response: "true"
  mapping_scheme: CODE
  dhis2_data_set: uFaVMlw4qxK
  dhis2_attribute_option_combo: ""
  dhis2_auth_method: basic
  dhis2_tree_ids: "akV6429SUqu"
  dhis2_facility_level: 5
  dhis2_district_oulevel_name: District/City
  dhis2_ou_mflid_attribute_id: ""
  authtoken: ""
  cc_dhis2_servers: ""
  cc_dhis2_hierarchy_servers: ""
  cc_dhis2_create_servers: ""
  cc_dhis2_update_servers: ""
  cc_dhis2_ougroup_add_servers: ""
  metadata_batch_size: 50
  sync_cron_expression: "0 0-23/6 * * *"
  retry_cron_expression: "*/5 * * * *"
pbs:
  pbsurl: https://pbs.example.org
  instance_name: train.ndpme
"""


class OriginalConfigFileTests(SynchronousTestCase):
    """The whole file, as the Go service read it."""

    def test_loads_unchanged(self) -> None:
        """Its keys map to this gateway's, unused ones are listed as ignored, an empty queue_prefix is the default."""
        path = Path(tempfile.mkdtemp(prefix="original-config-")) / "dhis2gw.yml"
        path.write_text(ORIGINAL_FILE)
        config = load_config(str(path), {"DHIS2GW_JWT_SECRET": "original-config-test-" + "s" * 40})
        self.assertEqual((config.server.port, config.server.redis_db, config.queue.prefix, config.server.timezone),
                         (9090, 5, "dhis2gw", "Africa/Kampala"))
        self.assertEqual((config.api.dhis2_base_url, config.api.dhis2_tree_i_ds, config.api.mapping_scheme),
                         ("https://hmis.example.org", ("akV6429SUqu",), "CODE"))
        self.assertEqual(list(config.destinations()), ["main"])
        self.assertIn("pbs", config.ignored_keys)
        self.assertIn("database.db_password", config.ignored_keys)
        self.assertIn("server.use_ssl", config.ignored_keys)
