"""
Tests for dhis2gw.config: every key's default, YAML spelling and environment variable, validation
errors (one line, naming the key, never showing a secret), URL handling, redaction and the shipped files.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.config import (
    DEV_CONFIG_PATH,
    Config,
    ConfigError,
    check_config,
    ensure_dev_secret,
    load_config,
)
from dhis2gw.config.schema import KEYS

ROOT = Path(__file__).resolve().parent.parent
PROD_CONF = str(ROOT / "conf" / "dhis2gw.yml")
DEV_CONF = str(ROOT / "conf" / "dev.yml")
MIB = 1024 * 1024
SECRET = "s3cret-jwt-" + "k" * 30
ENV_SECRET = {"DHIS2GW_JWT_SECRET": SECRET}

# (section, key) -> (value written in YAML, parsed value).  Every value differs from its default and
# from the environment value below, so each test can tell which layer won.
YAML_CASES: dict[tuple[str, str], tuple[Any, Any]] = {
    ("", "environment"): ("production", "production"),
    ("database", "uri"): ("postgresql://gw@db1/gwdb", "postgresql://gw@db1/gwdb"),
    ("server", "host"): ("10.0.0.5", "10.0.0.5"),
    ("server", "port"): (9191, 9191),
    ("server", "redis_address"): ("127.0.0.2:6379", "127.0.0.2:6379"),
    ("server", "redis_db"): (2, 2),
    ("server", "max_retries"): (5, 5),
    ("server", "max_concurrent"): (2, 2),
    ("server", "request_process_interval"): (6, 6.0),
    ("server", "templates_directory"): ("/y/templates", "/y/templates"),
    ("server", "static_directory"): ("/y/static", "/y/static"),
    ("server", "logdir"): ("/y/log", "/y/log"),
    ("server", "log_to_stdout"): ("off", False),
    ("server", "log_level"): ("Warning", "warn"),
    ("server", "docs_directory"): ("/y/docs", "/y/docs"),
    ("server", "migrations_dir"): ("/y/migrations", "/y/migrations"),
    ("server", "timezone"): ("Africa/Nairobi", "Africa/Nairobi"),
    ("server", "max_body_bytes"): ("4MiB", 4 * MIB),
    ("server", "state_dir"): ("/y/state", "/y/state"),
    ("server", "plugins_directory"): ("/y/plugins", "/y/plugins"),
    ("server", "workers"): (2, 2),
    ("server", "access_log"): (True, True),
    ("server", "shutdown_timeout"): ("45s", 45.0),
    ("server", "trusted_proxies"): (["10.0.0.1", "192.168.0.0/24"], ("10.0.0.1", "192.168.0.0/24")),
    ("server", "header_timeout"): ("15s", 15.0),
    ("server", "body_timeout"): ("3m", 180.0),
    ("server", "min_body_rate"): ("2KiB", 2048),
    ("server", "max_connections_per_address"): (32, 32),
    ("api", "dhis2_country"): ("Kenya", "Kenya"),
    ("api", "dhis2_base_url"): ("https://play.example.org/dhis/api", "https://play.example.org/dhis"),
    ("api", "dhis2_user"): ("yaml-user", "yaml-user"),
    ("api", "dhis2_password"): ("yaml-password", "yaml-password"),
    ("api", "dhis2_pat"): ("d2pat_yaml", "d2pat_yaml"),
    ("api", "save_response"): ("no", False),
    ("api", "mapping_scheme"): ("name", "NAME"),
    ("api", "dhis2_data_set"): ("lyLU2wR22tC", "lyLU2wR22tC"),
    ("api", "dhis2_attribute_option_combo"): ("aocYAML0001", "aocYAML0001"),
    ("api", "dhis2_auth_method"): ("basic", "basic"),
    ("api", "dhis2_tree_i_ds"): (["ImspTQPwCqd", "O6uvpzGd5pu"], ("ImspTQPwCqd", "O6uvpzGd5pu")),
    ("api", "dhis2_facility_level"): (6, 6),
    ("api", "dhis2_district_oulevel_name"): ("County", "County"),
    ("api", "cc_dhis2_servers"): ("cc1,cc2", ("cc1", "cc2")),
    ("api", "cc_dhis2_hierarchy_servers"): ("cc2", ("cc2",)),
    ("api", "cc_dhis2_create_servers"): (["cc1"], ("cc1",)),
    ("api", "cc_dhis2_update_servers"): ("cc1", ("cc1",)),
    ("api", "cc_dhis2_ou_group_add_servers"): ("cc2", ("cc2",)),
    ("api", "sync_cron_expression"): ("30 1 * * *", "30 1 * * *"),
    ("api", "retry_cron_expression"): ("*/2 * * * *", "*/2 * * * *"),
    ("auth", "jwt_secret"): ("Y" * 40, "Y" * 40),
    ("auth", "jwt_secret_file"): ("/y/jwt_secret", "/y/jwt_secret"),
    ("auth", "jwt_issuer"): ("gw-yaml", "gw-yaml"),
    ("auth", "access_token_ttl"): (300, 300),
    ("auth", "refresh_token_ttl"): ("1h", 3600),
    ("auth", "basic_auth_cache_seconds"): (30, 30),
    ("auth", "login_max_failures"): (4, 4),
    ("auth", "login_lockout_seconds"): (120, 120),
    ("auth", "login_lockout_max_seconds"): ("2h", 7200),
    ("auth", "password_min_length"): (14, 14),
    ("queue", "prefix"): ("gw_yaml", "gw_yaml"),
    ("queue", "lease_seconds"): (100, 100.0),
    ("queue", "heartbeat_seconds"): (10, 10.0),
    ("queue", "redis_timeout"): (3, 3.0),
    ("delivery", "backoff_base"): (5, 5.0),
    ("delivery", "backoff_cap"): (1000, 1000.0),
    ("delivery", "breaker_threshold"): (3, 3),
    ("delivery", "breaker_probe_interval"): (30, 30.0),
    ("delivery", "connect_timeout"): (20, 20.0),
    ("delivery", "read_timeout"): (60, 60.0),
    ("delivery", "max_response_bytes"): ("30MiB", 30 * MIB),
    ("delivery", "tracker_async_threshold_bytes"): (2 * MIB, 2 * MIB),
    ("delivery", "batch_enabled"): ("yes", True),
    ("delivery", "batch_max_values"): (1000, 1000),
    ("delivery", "batch_max_bytes"): ("1MiB", MIB),
    ("delivery", "batch_linger_ms"): (20, 20),
    ("request_log", "enabled"): (False, False),
    ("request_log", "flush_interval"): ("500ms", 0.5),
    ("request_log", "batch_size"): (100, 100),
    ("request_log", "max_buffer"): (1000, 1000),
    ("request_log", "body_excerpt_bytes"): (1024, 1024),
    ("request_log", "retention_days"): (30, 30),
}

# (env var, raw value, (section, key), parsed value)
ENV_CASES: list[tuple[str, str, tuple[str, str], Any]] = [
    ("DHIS2GW_ENVIRONMENT", "Development", ("", "environment"), "development"),
    ("DHIS2GW_DB", "postgres://a:b@db.example:5433/gw?sslmode=require", ("database", "uri"),
     "postgres://a:b@db.example:5433/gw?sslmode=require"),
    ("DHIS2GW_HOST", "0.0.0.0", ("server", "host"), "0.0.0.0"),
    ("DHIS2GW_SERVER_PORT", "8080", ("server", "port"), 8080),
    ("DHIS2GW_REDIS", "redis.example:6380", ("server", "redis_address"), "redis.example:6380"),
    ("DHIS2GW_REDIS_DB", "4", ("server", "redis_db"), 4),
    ("DHIS2GW_MAX_RETRIES", "7", ("server", "max_retries"), 7),
    ("DHIS2GW_MAX_CONCURRENT", "9", ("server", "max_concurrent"), 9),
    ("DHIS2GW_REQUEST_PROCESS_INTERVAL", "2.5", ("server", "request_process_interval"), 2.5),
    ("DHIS2GW_TEMPLATES_DIR", "/e/templates", ("server", "templates_directory"), "/e/templates"),
    ("DHIS2GW_STATIC_DIR", "/e/static", ("server", "static_directory"), "/e/static"),
    ("DHIS2GW_LOGDIR", "/e/log", ("server", "logdir"), "/e/log"),
    ("DHIS2GW_LOG_TO_STDOUT", "TRUE", ("server", "log_to_stdout"), True),
    ("DHIS2GW_LOG_LEVEL", "debug", ("server", "log_level"), "debug"),
    ("RTC_DOCS_DIR", "/e/docs", ("server", "docs_directory"), "/e/docs"),
    ("DHIS2GW_MIGRATTIONS_DIR", "file:///e/migrations", ("server", "migrations_dir"), "file:///e/migrations"),
    ("DISPATCHER2_TIMEZONE", "UTC", ("server", "timezone"), "UTC"),
    ("DHIS2GW_MAX_BODY_BYTES", "1MiB", ("server", "max_body_bytes"), MIB),
    ("DHIS2GW_STATE_DIR", "/e/state", ("server", "state_dir"), "/e/state"),
    ("DHIS2GW_PLUGINS_DIR", "/e/plugins", ("server", "plugins_directory"), "/e/plugins"),
    ("DHIS2GW_WORKERS", "3", ("server", "workers"), 3),
    ("DHIS2GW_ACCESS_LOG", "0", ("server", "access_log"), False),
    ("DHIS2GW_SHUTDOWN_TIMEOUT", "1m", ("server", "shutdown_timeout"), 60.0),
    ("DHIS2GW_TRUSTED_PROXIES", "10.0.0.2, fd00::/8", ("server", "trusted_proxies"), ("10.0.0.2", "fd00::/8")),
    ("DHIS2GW_HEADER_TIMEOUT", "5", ("server", "header_timeout"), 5.0),
    ("DHIS2GW_BODY_TIMEOUT", "1m", ("server", "body_timeout"), 60.0),
    ("DHIS2GW_MIN_BODY_RATE", "0", ("server", "min_body_rate"), 0),
    ("DHIS2GW_MAX_CONNECTIONS_PER_ADDRESS", "8", ("server", "max_connections_per_address"), 8),
    ("dhis2_country", "Uganda", ("api", "dhis2_country"), "Uganda"),
    ("dhis2_base_url", "https://hmis.example.org/api/", ("api", "dhis2_base_url"), "https://hmis.example.org"),
    ("dhis2_user", "env-user", ("api", "dhis2_user"), "env-user"),
    ("dhis2_password", "env-password", ("api", "dhis2_password"), "env-password"),
    ("dhis2_pat", "d2pat_env", ("api", "dhis2_pat"), "d2pat_env"),
    ("save_response", "YES", ("api", "save_response"), True),
    ("mapping_scheme", "uid", ("api", "mapping_scheme"), "UID"),
    ("dhis2_data_set", "pBOMPrpg1QX", ("api", "dhis2_data_set"), "pBOMPrpg1QX"),
    ("dhis_2_attribute_option_combo", "HllvX50cXC0", ("api", "dhis2_attribute_option_combo"), "HllvX50cXC0"),
    ("dhis2_auth_method", "Token", ("api", "dhis2_auth_method"), "pat"),
    ("dhis2_tree_i_ds", "a1, b2,,c3", ("api", "dhis2_tree_i_ds"), ("a1", "b2", "c3")),
    ("dhis2_facility_level", "4", ("api", "dhis2_facility_level"), 4),
    ("DHIS2GW_DHIS2_DISTRICT_OULEVEL_NAME", "District", ("api", "dhis2_district_oulevel_name"), "District"),
    ("cc_dhis2_servers", "cc2", ("api", "cc_dhis2_servers"), ("cc2",)),
    ("cc_dhis2_hierarchy_servers", "cc1, cc2", ("api", "cc_dhis2_hierarchy_servers"), ("cc1", "cc2")),
    ("cc_dhis2_create_servers", "cc2", ("api", "cc_dhis2_create_servers"), ("cc2",)),
    ("cc_dhis2_update_servers", "cc2,cc1", ("api", "cc_dhis2_update_servers"), ("cc2", "cc1")),
    ("cc_dhis2_ou_group_add_servers", "cc1", ("api", "cc_dhis2_ou_group_add_servers"), ("cc1",)),
    ("sync_cron_expression", "0  2 * * *", ("api", "sync_cron_expression"), "0 2 * * *"),
    ("retry_cron_expression", "*/10 * * * *", ("api", "retry_cron_expression"), "*/10 * * * *"),
    ("DHIS2GW_JWT_SECRET", "E" * 48, ("auth", "jwt_secret"), "E" * 48),
    ("DHIS2GW_JWT_SECRET_FILE", "/e/jwt_secret", ("auth", "jwt_secret_file"), "/e/jwt_secret"),
    ("DHIS2GW_JWT_ISSUER", "gw-env", ("auth", "jwt_issuer"), "gw-env"),
    ("DHIS2GW_ACCESS_TOKEN_TTL", "600", ("auth", "access_token_ttl"), 600),
    ("DHIS2GW_REFRESH_TOKEN_TTL", "2d", ("auth", "refresh_token_ttl"), 172800),
    ("DHIS2GW_BASIC_AUTH_CACHE_SECONDS", "0", ("auth", "basic_auth_cache_seconds"), 0),
    ("DHIS2GW_LOGIN_MAX_FAILURES", "3", ("auth", "login_max_failures"), 3),
    ("DHIS2GW_LOGIN_LOCKOUT_SECONDS", "10m", ("auth", "login_lockout_seconds"), 600),
    ("DHIS2GW_LOGIN_LOCKOUT_MAX_SECONDS", "30m", ("auth", "login_lockout_max_seconds"), 1800),
    ("DHIS2GW_PASSWORD_MIN_LENGTH", "12", ("auth", "password_min_length"), 12),
    ("DHIS2GW_QUEUE_PREFIX", "gw.test-1", ("queue", "prefix"), "gw.test-1"),
    ("DHIS2GW_QUEUE_LEASE_SECONDS", "90", ("queue", "lease_seconds"), 90.0),
    ("DHIS2GW_QUEUE_HEARTBEAT_SECONDS", "20", ("queue", "heartbeat_seconds"), 20.0),
    ("DHIS2GW_REDIS_TIMEOUT", "500ms", ("queue", "redis_timeout"), 0.5),
    ("DHIS2GW_BACKOFF_BASE", "10", ("delivery", "backoff_base"), 10.0),
    ("DHIS2GW_BACKOFF_CAP", "2h", ("delivery", "backoff_cap"), 7200.0),
    ("DHIS2GW_BREAKER_THRESHOLD", "8", ("delivery", "breaker_threshold"), 8),
    ("DHIS2GW_BREAKER_PROBE_INTERVAL", "5", ("delivery", "breaker_probe_interval"), 5.0),
    ("DHIS2GW_DHIS2_CONNECT_TIMEOUT", "3", ("delivery", "connect_timeout"), 3.0),
    ("DHIS2GW_DHIS2_READ_TIMEOUT", "300", ("delivery", "read_timeout"), 300.0),
    ("DHIS2GW_MAX_RESPONSE_BYTES", "50MiB", ("delivery", "max_response_bytes"), 50 * MIB),
    ("DHIS2GW_TRACKER_ASYNC_THRESHOLD", "512KiB", ("delivery", "tracker_async_threshold_bytes"), 512 * 1024),
    ("DHIS2GW_BATCH_ENABLED", "0", ("delivery", "batch_enabled"), False),
    ("DHIS2GW_BATCH_MAX_VALUES", "100", ("delivery", "batch_max_values"), 100),
    ("DHIS2GW_BATCH_MAX_BYTES", "65536", ("delivery", "batch_max_bytes"), 65536),
    ("DHIS2GW_BATCH_LINGER_MS", "0", ("delivery", "batch_linger_ms"), 0),
    ("DHIS2GW_REQUEST_LOG", "On", ("request_log", "enabled"), True),
    ("DHIS2GW_REQUEST_LOG_FLUSH_INTERVAL", "1", ("request_log", "flush_interval"), 1.0),
    ("DHIS2GW_REQUEST_LOG_BATCH_SIZE", "50", ("request_log", "batch_size"), 50),
    ("DHIS2GW_REQUEST_LOG_MAX_BUFFER", "500", ("request_log", "max_buffer"), 500),
    ("DHIS2GW_REQUEST_LOG_BODY_EXCERPT_BYTES", "4096", ("request_log", "body_excerpt_bytes"), 4096),
    ("DHIS2GW_REQUEST_LOG_RETENTION_DAYS", "0", ("request_log", "retention_days"), 0),
]

# (section, key) -> the default the specification (and the original's README) fixes.
DEFAULTS: dict[tuple[str, str], Any] = {
    ("", "environment"): "production",
    ("database", "uri"): "postgres://username:password@localhost/dhis2gw?sslmode=disable",
    ("server", "host"): "localhost", ("server", "port"): 9090, ("server", "redis_address"): "127.0.0.1:6379",
    ("server", "redis_db"): 0, ("server", "max_retries"): 3, ("server", "max_concurrent"): 5,
    ("server", "request_process_interval"): 4.0, ("server", "templates_directory"): "./templates",
    ("server", "static_directory"): "./static", ("server", "logdir"): "/var/log/dhis2gw",
    ("server", "log_to_stdout"): True, ("server", "log_level"): "info", ("server", "docs_directory"): "./docs/md_docs",
    ("server", "migrations_dir"): "file:///usr/share/dhis2gw/db/migrations", ("server", "timezone"): "Africa/Kampala",
    ("server", "max_body_bytes"): 10 * MIB, ("server", "state_dir"): "/var/lib/dhis2gw",
    ("server", "plugins_directory"): "./plugins", ("server", "workers"): 1, ("server", "access_log"): False,
    ("server", "shutdown_timeout"): 30.0, ("server", "trusted_proxies"): (), ("server", "header_timeout"): 10.0,
    ("server", "body_timeout"): 120.0, ("server", "min_body_rate"): 1024,
    ("server", "max_connections_per_address"): 64,
    ("api", "dhis2_country"): "", ("api", "dhis2_base_url"): "", ("api", "dhis2_user"): "",
    ("api", "dhis2_password"): "", ("api", "dhis2_pat"): "", ("api", "save_response"): True,
    ("api", "mapping_scheme"): "CODE", ("api", "dhis2_data_set"): "", ("api", "dhis2_attribute_option_combo"): "",
    ("api", "dhis2_auth_method"): "basic", ("api", "dhis2_tree_i_ds"): (), ("api", "dhis2_facility_level"): 5,
    ("api", "dhis2_district_oulevel_name"): "District/City", ("api", "cc_dhis2_servers"): (),
    ("api", "cc_dhis2_hierarchy_servers"): (), ("api", "cc_dhis2_create_servers"): (),
    ("api", "cc_dhis2_update_servers"): (), ("api", "cc_dhis2_ou_group_add_servers"): (),
    ("api", "sync_cron_expression"): "0 0-23/6 * * *", ("api", "retry_cron_expression"): "*/5 * * * *",
    ("auth", "jwt_secret"): "", ("auth", "jwt_secret_file"): "", ("auth", "jwt_issuer"): "dhis2gw",
    ("auth", "access_token_ttl"): 900, ("auth", "refresh_token_ttl"): 604800,
    ("auth", "basic_auth_cache_seconds"): 60, ("auth", "login_max_failures"): 5,
    ("auth", "login_lockout_seconds"): 300, ("auth", "login_lockout_max_seconds"): 3600,
    ("auth", "password_min_length"): 10,
    ("queue", "prefix"): "dhis2gw", ("queue", "lease_seconds"): 60.0, ("queue", "heartbeat_seconds"): 15.0,
    ("queue", "redis_timeout"): 2.0,
    ("delivery", "backoff_base"): 30.0, ("delivery", "backoff_cap"): 3600.0, ("delivery", "breaker_threshold"): 5,
    ("delivery", "breaker_probe_interval"): 15.0, ("delivery", "connect_timeout"): 10.0,
    ("delivery", "read_timeout"): 120.0, ("delivery", "max_response_bytes"): 20 * MIB,
    ("delivery", "tracker_async_threshold_bytes"): MIB, ("delivery", "batch_enabled"): False,
    ("delivery", "batch_max_values"): 5000, ("delivery", "batch_max_bytes"): 2 * MIB,
    ("delivery", "batch_linger_ms"): 50,
    ("request_log", "enabled"): True, ("request_log", "flush_interval"): 0.2, ("request_log", "batch_size"): 500,
    ("request_log", "max_buffer"): 10000, ("request_log", "body_excerpt_bytes"): 2048,
    ("request_log", "retention_days"): 90,
}

ALL_KEYS = {(key.section, key.name) for key in KEYS}


def get(config: Config, section: str, name: str) -> Any:
    """Read one key's value from a Config."""
    return getattr(config if not section else getattr(config, section), name)


def yaml_document(cases: dict[tuple[str, str], tuple[Any, Any]]) -> dict[str, Any]:
    """The YAML document that sets every key of YAML_CASES, plus the cc servers it names."""
    document: dict[str, Any] = {}
    for (section, name), (raw, _) in cases.items():
        if section:
            document.setdefault(section, {})[name] = raw
        else:
            document[name] = raw
    document["servers"] = {"cc1": {"base_url": "https://cc1.example.org", "user": "u1", "password": "cc1-pass"},
                           "cc2": {"base_url": "https://cc2.example.org/api/", "pat": "d2pat_cc2"}}
    return document


class ConfigTestMixin:
    """Helpers shared by the config test classes."""

    _names = itertools.count()

    def temp_path(self) -> str:
        """A fresh path in a per-test temporary directory removed after the test (not under the cwd)."""
        base = self.__dict__.get("_temp_dir")
        if base is None:
            base = self._temp_dir = tempfile.mkdtemp(prefix="dhis2gw-config-test-")
            self.addCleanup(shutil.rmtree, base, True)  # type: ignore[attr-defined]
        return os.path.join(base, f"f{next(self._names)}")

    def write(self, document: Any) -> str:
        """Write a YAML document (or raw text) to a temporary file and return its path."""
        path = self.temp_path()
        text = document if isinstance(document, str) else yaml.safe_dump(document)
        Path(path).write_text(text, encoding="utf-8")
        return path

    def assert_config_error(self, key: str, path: str | None, environ: dict[str, str],
                            secrets: tuple[str, ...] = ()) -> str:
        """Loading fails with a one-line ConfigError naming ``key`` and showing none of ``secrets``."""
        error = self.assertRaises(ConfigError, load_config, path, environ)  # type: ignore[attr-defined]
        message = str(error)
        self.assertTrue(message.startswith(key + ":"), message)  # type: ignore[attr-defined]
        self.assertNotIn("\n", message)  # type: ignore[attr-defined]
        for secret in secrets:
            self.assertNotIn(secret, message)  # type: ignore[attr-defined]
        return message


class KeyTableTests(ConfigTestMixin, SynchronousTestCase):
    """Every key: its default, its YAML spelling and its environment variable."""

    def test_tables_cover_every_key(self) -> None:
        """The test tables list exactly the keys of the schema, each env case with the key's own variable."""
        self.assertEqual(set(DEFAULTS), ALL_KEYS)
        self.assertEqual(set(YAML_CASES), ALL_KEYS)
        self.assertEqual({where for _, _, where, _ in ENV_CASES}, ALL_KEYS)
        env_of = {(key.section, key.name): key.env for key in KEYS}
        for env, _, where, _ in ENV_CASES:
            self.assertEqual(env_of[where][0], env, where)

    def test_defaults(self) -> None:
        """With no file and no environment (but a JWT secret) every key has its documented default."""
        config = load_config(None, ENV_SECRET)
        for (section, name), expected in DEFAULTS.items():
            expected = SECRET if (section, name) == ("auth", "jwt_secret") else expected
            self.assertEqual(get(config, section, name), expected, f"{section}.{name}")
        self.assertEqual(config.servers, {})
        self.assertEqual(config.destinations(), {})

    def test_yaml_keys(self) -> None:
        """Every key is read from the YAML file and parsed to its typed value."""
        config = load_config(self.write(yaml_document(YAML_CASES)), {})
        for (section, name), (_, expected) in YAML_CASES.items():
            self.assertEqual(get(config, section, name), expected, f"{section}.{name}")

    def test_environment_overrides_yaml(self) -> None:
        """Every key's environment variable is read, parsed, and wins over the YAML file."""
        path = self.write(yaml_document(YAML_CASES))
        for env, raw, (section, name), expected in ENV_CASES:
            config = load_config(path, {env: raw})
            self.assertEqual(get(config, section, name), expected, env)
            self.assertNotEqual(YAML_CASES[(section, name)][1], expected, env)

    def test_empty_environment_variable_is_unset(self) -> None:
        """An environment variable set to "" does not override the file."""
        config = load_config(self.write(yaml_document(YAML_CASES)), {"DHIS2GW_SERVER_PORT": "", "dhis2_user": ""})
        self.assertEqual((config.server.port, config.api.dhis2_user), (9191, "yaml-user"))

    def test_shipped_production_file_documents_every_key(self) -> None:
        """conf/dhis2gw.yml mentions every key and every key's environment variable."""
        text = Path(PROD_CONF).read_text(encoding="utf-8")
        for key in KEYS:
            self.assertIn(f"{key.name}:", text)
            self.assertIn(key.env[0], text)


class InvalidValueTests(ConfigTestMixin, SynchronousTestCase):
    """Bad values stop loading with one line that names the key and hides secrets."""

    def test_bad_port(self) -> None:
        """An unparsable port names the key, the value and the variable it came from."""
        message = self.assert_config_error("server.port", None, {**ENV_SECRET, "DHIS2GW_SERVER_PORT": "abc"})
        self.assertEqual(message, "server.port: 'abc' is not a valid TCP port (from DHIS2GW_SERVER_PORT)")
        self.assert_config_error("server.port", None, {**ENV_SECRET, "DHIS2GW_SERVER_PORT": "70000"})

    def test_bad_value_in_file_names_the_file(self) -> None:
        """A bad YAML value names the file it came from."""
        path = self.write({"server": {"max_concurrent": 0}})
        message = self.assert_config_error("server.max_concurrent", path, ENV_SECRET)
        self.assertIn(path, message)

    def test_typed_values(self) -> None:
        """Booleans, integers, durations and sizes reject what they cannot parse."""
        for env, key in [("DHIS2GW_ACCESS_LOG", "server.access_log"), ("DHIS2GW_WORKERS", "server.workers"),
                         ("DHIS2GW_SHUTDOWN_TIMEOUT", "server.shutdown_timeout"),
                         ("DHIS2GW_MAX_BODY_BYTES", "server.max_body_bytes"),
                         ("DHIS2GW_QUEUE_PREFIX", "queue.prefix"), ("mapping_scheme", "api.mapping_scheme")]:
            self.assert_config_error(key, None, {**ENV_SECRET, env: "maybe?"})
        self.assert_config_error("auth.access_token_ttl", None, {**ENV_SECRET, "DHIS2GW_ACCESS_TOKEN_TTL": "0"})

    def test_unknown_auth_method(self) -> None:
        """An unknown dhis2_auth_method is rejected, listing the accepted ones."""
        message = self.assert_config_error("api.dhis2_auth_method", None, {**ENV_SECRET, "dhis2_auth_method": "oauth2"})
        self.assertIn("basic, pat, token", message)

    def test_invalid_cron(self) -> None:
        """Cron expressions are checked with APScheduler's crontab parser."""
        self.assert_config_error("api.sync_cron_expression", None, {**ENV_SECRET, "sync_cron_expression": "61 * * * *"})
        self.assert_config_error("api.retry_cron_expression", None, {**ENV_SECRET, "retry_cron_expression": "* * *"})

    def test_bad_timezone(self) -> None:
        """An unknown time zone is rejected."""
        self.assert_config_error("server.timezone", None, {**ENV_SECRET, "DISPATCHER2_TIMEZONE": "Mars/Olympus_Mons"})

    def test_missing_jwt_secret_in_production(self) -> None:
        """Production without a JWT secret (env, file key or secret file) does not load."""
        message = self.assert_config_error("auth.jwt_secret", None, {})
        self.assertIn("DHIS2GW_JWT_SECRET", message)
        self.assertEqual(load_config(None, {"DHIS2GW_ENVIRONMENT": "development"}).auth.jwt_secret, "")

    def test_short_jwt_secret_is_not_shown(self) -> None:
        """A too-short secret is rejected in any environment without echoing it."""
        for env in ("production", "development"):
            self.assert_config_error("auth.jwt_secret", None, {"DHIS2GW_ENVIRONMENT": env,
                                                               "DHIS2GW_JWT_SECRET": "tiny-secret-value"},
                                     secrets=("tiny-secret-value",))

    def test_unknown_cc_server(self) -> None:
        """A cc_* list naming a server not defined under servers: is rejected, listing the known ones."""
        path = self.write(yaml_document({}) | {"api": {"cc_dhis2_servers": "cc1,nope"}})
        message = self.assert_config_error("api.cc_dhis2_servers", path, ENV_SECRET)
        self.assertEqual(message, "api.cc_dhis2_servers: unknown server 'nope' (known: cc1, cc2)")

    def test_unknown_keys(self) -> None:
        """Unknown keys, at the top level, in a section or in a server entry, are errors with a suggestion."""
        message = self.assert_config_error("server.prot", self.write({"server": {"prot": 1}}), ENV_SECRET)
        self.assertIn("'port'", message)
        self.assert_config_error("sever", self.write({"sever": {}}), ENV_SECRET)
        doc = yaml_document({})
        doc["servers"]["cc1"]["passwd"] = "x"
        self.assert_config_error("servers.cc1.passwd", self.write(doc), ENV_SECRET)

    def test_secrets_never_in_messages(self) -> None:
        """Errors about URIs and credentials do not contain the password."""
        self.assert_config_error("database.uri", None, {**ENV_SECRET, "DHIS2GW_DB": "mysql://u:hunter2pw@h/d"},
                                 secrets=("hunter2pw",))
        self.assert_config_error("database.uri", None, {**ENV_SECRET, "DHIS2GW_DB": "postgres://u:hunter2pw@[h/d"},
                                 secrets=("hunter2pw",))
        self.assert_config_error("server.redis_address", None,
                                 {**ENV_SECRET, "DHIS2GW_REDIS": "redis://:hunter2pw@h:x/0"}, secrets=("hunter2pw",))
        self.assert_config_error("server.redis_address", None, {**ENV_SECRET, "DHIS2GW_REDIS": "h:0"})
        self.assert_config_error("api.dhis2_base_url", None,
                                 {**ENV_SECRET, "dhis2_base_url": "https://u:hunter2pw@h.org"}, secrets=("hunter2pw",))
        self.assert_config_error("api.dhis2_user", None,
                                 {**ENV_SECRET, "dhis2_base_url": "https://h.org", "dhis2_password": "hunter2pw"},
                                 secrets=("hunter2pw",))

    def test_cross_key_rules(self) -> None:
        """Heartbeat below lease, backoff cap above base, buffer above batch, refresh above access TTL."""
        for env, key in [({"DHIS2GW_QUEUE_HEARTBEAT_SECONDS": "60"}, "queue.heartbeat_seconds"),
                         ({"DHIS2GW_BACKOFF_BASE": "4000"}, "delivery.backoff_base"),
                         ({"DHIS2GW_REQUEST_LOG_BATCH_SIZE": "20000"}, "request_log.batch_size"),
                         ({"DHIS2GW_ACCESS_TOKEN_TTL": "8d"}, "auth.access_token_ttl"),
                         ({"DHIS2GW_REDIS": "redis://h/3", "DHIS2GW_REDIS_DB": "4"}, "server.redis_db")]:
            self.assert_config_error(key, None, {**ENV_SECRET, **env})

    def test_conflicting_spellings(self) -> None:
        """A key set under both its name and its alias, or by two disagreeing variables, is an error."""
        path = self.write({"api": {"dhis2_tree_ids": "a", "dhis2_tree_i_ds": "b"}})
        self.assert_config_error("api.dhis2_tree_i_ds", path, ENV_SECRET)
        self.assert_config_error("server.migrations_dir", None, {**ENV_SECRET, "DHIS2GW_MIGRATTIONS_DIR": "/a",
                                                                 "DHIS2GW_MIGRATIONS_DIR": "/b"})

    def test_credentials_required_only_with_base_url(self) -> None:
        """basic needs user and password, pat needs a token, but only once dhis2_base_url is set."""
        self.assertEqual(load_config(None, {**ENV_SECRET, "dhis2_auth_method": "pat"}).api.dhis2_auth_method, "pat")
        base = {**ENV_SECRET, "dhis2_base_url": "https://h.org"}
        self.assert_config_error("api.dhis2_pat", None, {**base, "dhis2_auth_method": "pat"})
        self.assert_config_error("api.dhis2_password", None, {**base, "dhis2_user": "u"})
        self.assertEqual(load_config(None, {**base, "dhis2_pat": "d2pat_x"}).api.dhis2_auth_method, "pat")
        both = {**base, "dhis2_user": "u", "dhis2_password": "p", "dhis2_pat": "d2pat_x"}
        self.assertEqual(load_config(None, both).api.dhis2_auth_method, "basic")

    def test_file_problems(self) -> None:
        """A missing file or invalid YAML is one line naming the file."""
        for path in ("/nonexistent/dhis2gw.yml", self.write("server:\n  port: [1,\n")):
            message = str(self.assertRaises(ConfigError, load_config, path, ENV_SECRET))
            self.assertIn(path, message)
            self.assertNotIn("\n", message)


class ValueHandlingTests(ConfigTestMixin, SynchronousTestCase):
    """URL normalisation, aliases, servers, redaction and the DSN."""

    def test_base_url_normalisation(self) -> None:
        """dhis2_base_url with or without a trailing / and /api gives the instance root."""
        for raw in ("https://h.org", "https://h.org/", "https://h.org/api", "https://h.org/api/",
                    "HTTPS://h.org/api/41"):
            api = load_config(None, {**ENV_SECRET, "dhis2_base_url": raw, "dhis2_pat": "d2pat_x"}).api
            self.assertEqual((api.dhis2_base_url, api.dhis2_api_url), ("https://h.org", "https://h.org/api"), raw)
        api = load_config(None, {**ENV_SECRET, "dhis2_base_url": "http://h.org:8080/dhis/api/", "dhis2_pat": "t"}).api
        self.assertEqual(api.dhis2_base_url, "http://h.org:8080/dhis")

    def test_migrations_path(self) -> None:
        """file:// URLs become paths; plain paths stay as they are."""
        for raw, expected in [("file:///usr/share/dhis2gw/db/migrations", "/usr/share/dhis2gw/db/migrations"),
                              ("file://db/migrations", "db/migrations"), ("./migrations", "./migrations"),
                              ("file:///srv/my%20migrations", "/srv/my migrations")]:
            server = load_config(None, {**ENV_SECRET, "DHIS2GW_MIGRATTIONS_DIR": raw}).server
            self.assertEqual(server.migrations_path, expected)

    def test_original_aliases(self) -> None:
        """The original sample's typos and key names are accepted; its unused keys are listed as ignored."""
        path = self.write({"server": {"http_port": 9999, "queue_prefix": "old", "use_ssl": "true"},
                           "api": {"dhis2_tree_ids": "a,b", "cc_dhis2_ougroup_add_servers": "cc1",
                                   "metadata_batch_size": 50},
                           "pbs": {"pbsurl": "x"},
                           "servers": {"cc1": {"base_url": "https://cc1.org", "pat": "t"}}})
        config = load_config(path, ENV_SECRET)
        self.assertEqual((config.server.port, config.queue.prefix), (9999, "old"))
        self.assertEqual(config.api.dhis2_tree_i_ds, ("a", "b"))
        self.assertEqual(config.api.cc_dhis2_ou_group_add_servers, ("cc1",))
        self.assertEqual(config.ignored_keys, ("api.metadata_batch_size", "pbs", "server.use_ssl"))

    def test_redis_address_forms(self) -> None:
        """host:port, a bare host, redis:// URLs and embedded are all understood."""
        cases = [("10.1.1.1:6380", ("10.1.1.1", 6380, 0, None)), ("redis.local", ("redis.local", 6379, 0, None)),
                 ("redis://:pw@r.local:6390/5", ("r.local", 6390, 5, "pw")), ("embedded", ("", 0, 0, None))]
        for raw, expected in cases:
            s = load_config(None, {**ENV_SECRET, "DHIS2GW_REDIS": raw}).server
            self.assertEqual((s.redis_host, s.redis_port, s.redis_db, s.redis_password), expected, raw)
        self.assertTrue(load_config(None, {**ENV_SECRET, "DHIS2GW_REDIS": "embedded"}).server.redis_embedded)

    def test_servers_and_destinations(self) -> None:
        """servers: entries get defaults and env overrides; destinations() lists main first, enabled only."""
        doc = yaml_document({}) | {"api": {"dhis2_base_url": "https://main.org/api/", "dhis2_user": "u",
                                           "dhis2_password": "p"}, "server": {"max_concurrent": 3}}
        doc["servers"]["off"] = {"base_url": "https://off.org", "enabled": False}
        doc["servers"]["cc1"]["max_concurrent"] = 7
        config = load_config(self.write(doc), {**ENV_SECRET, "DHIS2GW_SERVERS_CC1_PASSWORD": "from-env"})
        self.assertEqual(list(config.destinations()), ["main", "cc1", "cc2"])
        main, cc1, cc2 = config.destinations().values()
        self.assertEqual((main.base_url, main.auth_method, main.user, main.max_concurrent, main.instance_name),
                         ("https://main.org", "basic", "u", 3, "main"))
        self.assertEqual((cc1.password, cc1.max_concurrent, cc1.auth_method), ("from-env", 7, "basic"))
        self.assertEqual((cc2.base_url, cc2.auth_method, cc2.max_concurrent, cc2.instance_name),
                         ("https://cc2.example.org", "pat", 3, "cc2"))
        self.assertFalse(config.servers["off"].enabled)

    def test_server_entry_errors(self) -> None:
        """Bad server names, the reserved name main and a missing base_url are rejected."""
        for servers, key in [({"Bad Name": {}}, "servers.Bad Name"), ({"main": {}}, "servers.main"),
                             ({"x": {"user": "u"}}, "servers.x.base_url"),
                             ({"x": {"base_url": "https://x.org", "user": "u"}}, "servers.x.password")]:
            self.assert_config_error(key, self.write({"servers": servers}), ENV_SECRET)

    def test_redacted_and_repr_hide_secrets(self) -> None:
        """redacted() and repr() replace every secret, including passwords inside URIs."""
        doc = yaml_document(YAML_CASES)
        doc["database"]["uri"] = "postgres://gw:db-pass-9@db/gw"
        doc["server"]["redis_address"] = "redis://:redis-pass-9@r:6379"
        doc["server"].pop("redis_db")
        config = load_config(self.write(doc), {})
        secrets = ("db-pass-9", "redis-pass-9", "yaml-password", "d2pat_yaml", "Y" * 40, "cc1-pass", "d2pat_cc2")
        for text in (repr(config), str(config.redacted())):
            for secret in secrets:
                self.assertNotIn(secret, text)
        redacted = config.redacted()
        self.assertEqual((redacted["api"]["dhis2_password"], redacted["auth"]["jwt_secret"]), ("***", "***"))
        self.assertEqual(redacted["servers"]["cc1"]["password"], "***")
        self.assertEqual(redacted["database"]["uri"], "postgres://gw:***@db/gw")
        self.assertEqual(redacted["api"]["dhis2_tree_i_ds"], ["ImspTQPwCqd", "O6uvpzGd5pu"])
        self.assertEqual(load_config(None, ENV_SECRET | {"DHIS2GW_ENVIRONMENT": "development", "DHIS2GW_JWT_SECRET": ""}
                                     ).redacted()["auth"]["jwt_secret"], "")

    def test_dsn(self) -> None:
        """postgres:// URIs become libpq keywords, decoding escapes and keeping query parameters."""
        db = load_config(None, {**ENV_SECRET, "DHIS2GW_DB":
                                "postgresql://gw%40x:p%20w'd@db.example:5433/gw%2Fdb?sslmode=require&connect_timeout=5"}
                         ).database
        self.assertEqual(db.dsn_kwargs(), {"host": "db.example", "port": "5433", "dbname": "gw/db", "user": "gw@x",
                                           "password": "p w'd", "sslmode": "require", "connect_timeout": "5"})
        self.assertEqual(db.dsn(), "host=db.example port=5433 dbname=gw/db user=gw@x password='p w\\'d' "
                                   "sslmode=require connect_timeout=5")
        self.assertNotIn("p w'd", repr(db))
        default = load_config(None, ENV_SECRET).database
        self.assertEqual(default.dsn(), "host=localhost dbname=dhis2gw user=username password=password sslmode=disable")
        socket = load_config(None, {**ENV_SECRET, "DHIS2GW_DB": "postgres:///gw?host=/run/postgresql"}).database
        self.assertEqual(socket.dsn_kwargs(), {"dbname": "gw", "host": "/run/postgresql"})
        embedded = load_config(None, {**ENV_SECRET, "DHIS2GW_DB": "embedded"}).database
        self.assertTrue(embedded.is_embedded)
        self.assertRaises(ConfigError, embedded.dsn_kwargs)


class ShippedFilesTests(ConfigTestMixin, SynchronousTestCase):
    """conf/dhis2gw.yml and conf/dev.yml load, and check-config and the dev secret behave."""

    def test_production_file(self) -> None:
        """The production file passes check-config with a secret in the environment, and says why without one."""
        summary = check_config(PROD_CONF, {"DHIS2GW_JWT_SECRET": "x" * 40})
        self.assertIn("configuration OK", summary)
        self.assertIn("jwt secret: set (from DHIS2GW_JWT_SECRET)", summary)
        config = load_config(PROD_CONF, {"DHIS2GW_JWT_SECRET": "x" * 40})
        self.assertEqual((config.environment, config.server.migrations_path, config.server.plugins_directory),
                         ("production", "/usr/share/dhis2gw/db/migrations", "/usr/share/dhis2gw/plugins"))
        self.assertEqual(config.auth.jwt_secret_file, "/etc/dhis2gw/jwt_secret")
        if not os.path.exists("/etc/dhis2gw/jwt_secret"):
            error = self.assertRaises(ConfigError, check_config, PROD_CONF, {})
            self.assertIn("/etc/dhis2gw/jwt_secret", str(error))

    def test_secret_file(self) -> None:
        """jwt_secret_file is read when jwt_secret is unset; check-config names where the secret came from."""
        secret_file = self.write("F" * 40 + "\n")
        path = self.write({"auth": {"jwt_secret_file": secret_file}})
        self.assertEqual(load_config(path, {}).auth.jwt_secret, "F" * 40)
        self.assertIn(f"from {secret_file}", check_config(path, {}))
        self.assertEqual(load_config(path, ENV_SECRET).auth.jwt_secret, SECRET)

    def test_dev_file(self) -> None:
        """conf/dev.yml is the embedded, local development setup pointing at the simulator."""
        self.assertEqual(Path(DEV_CONF), DEV_CONFIG_PATH)
        config = load_config(DEV_CONF, {})
        self.assertTrue(config.is_development and config.database.is_embedded and config.server.redis_embedded)
        self.assertEqual((config.server.host, config.server.port, config.server.state_dir, config.server.logdir),
                         ("127.0.0.1", 9090, "./.state", "./.state/log"))
        self.assertEqual(config.server.migrations_path, "./migrations")
        self.assertEqual(list(config.destinations()), ["main"])
        self.assertEqual(config.destinations()["main"].base_url, "http://127.0.0.1:8099")
        self.assertEqual((config.api.dhis2_data_set, config.api.dhis2_tree_i_ds), ("", ()))
        self.assertIn("environment: development", check_config(DEV_CONF, {}))

    def test_ensure_dev_secret(self) -> None:
        """In development a secret is generated once into <state_dir>/jwt_secret (0600) and reused."""
        state = self.temp_path()
        config = load_config(DEV_CONF, {"DHIS2GW_STATE_DIR": state})
        first = ensure_dev_secret(config)
        self.assertEqual(config.auth.jwt_secret, "")
        self.assertGreaterEqual(len(first.auth.jwt_secret), 32)
        secret_file = Path(state) / "jwt_secret"
        self.assertEqual(stat.S_IMODE(secret_file.stat().st_mode), 0o600)
        self.assertEqual(secret_file.read_text().strip(), first.auth.jwt_secret)
        self.assertEqual(ensure_dev_secret(config).auth.jwt_secret, first.auth.jwt_secret)
        production = load_config(None, ENV_SECRET)
        self.assertIs(ensure_dev_secret(production), production)

    def test_import_is_light(self) -> None:
        """Loading a configuration installs no reactor and imports no APScheduler scheduler."""
        code = ("import sys, dhis2gw.config as c; c.load_config(None, {'DHIS2GW_JWT_SECRET': 'x' * 40}); "
                "bad = [m for m in ('twisted.internet.reactor', 'apscheduler.schedulers.twisted') "
                "if m in sys.modules]; "
                "print(bad)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
        self.assertEqual(out.stdout.strip(), "[]")
