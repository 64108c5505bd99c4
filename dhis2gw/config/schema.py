"""
The table of every dhis2gw configuration key: its YAML place, environment variables, parser and default.

`dhis2gw.config` builds the frozen dataclasses from this table; keeping the table in one place means the
YAML reader, the environment reader, the tests and the documentation in ``conf/dhis2gw.yml`` all agree
on a key's name, environment variable and default.  Environment variable names are those of the
original Go dhis2gw's configuration reference, typos included (``DHIS2GW_MIGRATTIONS_DIR``,
``dhis_2_attribute_option_combo``), so existing deployments keep working.  The parsers that turn raw
values into typed ones live in `dhis2gw.config.parsers` (importable from here as well).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dhis2gw.config.parsers import (
    MIB,
    Parser,
    boolean,
    byte_size,
    choice,
    comma_list,
    cron_expression,
    database_uri,
    dhis2_url,
    integer,
    migrations_location,
    networks,
    nonempty_text,
    queue_prefix,
    redis_address,
    seconds,
    tcp_port,
    text,
    timezone_name,
)

__all__ = [
    "DEFAULT_DATABASE_URI", "KEYS", "LEGACY_IGNORED", "LEGACY_IGNORED_SECTIONS", "MIB", "SECTIONS",
    "SERVER_ENTRY_KEYS", "SERVER_NAME", "Key", "Parser", "boolean", "byte_size", "choice", "comma_list",
    "cron_expression", "database_uri", "dhis2_url", "integer", "migrations_location", "networks", "nonempty_text",
    "queue_prefix", "redis_address", "seconds", "tcp_port", "text", "timezone_name",
]

DEFAULT_DATABASE_URI = "postgres://username:password@localhost/dhis2gw?sslmode=disable"


@dataclass(frozen=True)
class Key:
    """One configuration key: where it lives in YAML, which environment variables set it, how to parse it."""

    section: str  # "" for top-level keys
    name: str
    env: tuple[str, ...]
    parse: Parser
    default: Any
    secret: bool = False
    url: bool = False  # may embed a password: shown through redact_url
    aliases: tuple[tuple[str, str], ...] = ()  # other (section, name) spellings accepted in YAML

    @property
    def path(self) -> str:
        """The dotted name used in error messages, e.g. ``server.port``."""
        return f"{self.section}.{self.name}" if self.section else self.name


def _k(section: str, name: str, env: str | tuple[str, ...], parse: Parser, default: Any, **kw: Any) -> Key:
    return Key(section, name, (env,) if isinstance(env, str) else env, parse, default, **kw)


_AUTH_METHOD = choice("", "basic", "pat", synonyms={"token": "pat"})
_PLUS = integer(1)
_NONNEG = integer(0)

KEYS: tuple[Key, ...] = (
    _k("", "environment", "DHIS2GW_ENVIRONMENT", choice("production", "development"), "production",
       aliases=(("server", "environment"),)),
    _k("database", "uri", "DHIS2GW_DB", database_uri, DEFAULT_DATABASE_URI, url=True),
    _k("server", "host", "DHIS2GW_HOST", nonempty_text, "localhost"),
    _k("server", "port", "DHIS2GW_SERVER_PORT", tcp_port, 9090, aliases=(("server", "http_port"),)),
    _k("server", "redis_address", "DHIS2GW_REDIS", redis_address, "127.0.0.1:6379", url=True),
    _k("server", "redis_db", "DHIS2GW_REDIS_DB", _NONNEG, 0),
    _k("server", "max_retries", "DHIS2GW_MAX_RETRIES", _NONNEG, 3),
    _k("server", "max_concurrent", "DHIS2GW_MAX_CONCURRENT", _PLUS, 5),
    _k("server", "request_process_interval", "DHIS2GW_REQUEST_PROCESS_INTERVAL", seconds(), 4.0),
    _k("server", "templates_directory", "DHIS2GW_TEMPLATES_DIR", nonempty_text, "./templates"),
    _k("server", "static_directory", "DHIS2GW_STATIC_DIR", nonempty_text, "./static"),
    _k("server", "logdir", "DHIS2GW_LOGDIR", nonempty_text, "/var/log/dhis2gw"),
    _k("server", "log_to_stdout", "DHIS2GW_LOG_TO_STDOUT", boolean, True),
    _k("server", "log_level", "DHIS2GW_LOG_LEVEL", choice("debug", "info", "warn", "error", "critical",
                                                          synonyms={"warning": "warn"}), "info"),
    _k("server", "docs_directory", "RTC_DOCS_DIR", nonempty_text, "./docs/md_docs"),
    _k("server", "migrations_dir", ("DHIS2GW_MIGRATTIONS_DIR", "DHIS2GW_MIGRATIONS_DIR"), migrations_location,
       "file:///usr/share/dhis2gw/db/migrations"),
    _k("server", "timezone", "DISPATCHER2_TIMEZONE", timezone_name, "Africa/Kampala"),
    _k("server", "max_body_bytes", "DHIS2GW_MAX_BODY_BYTES", byte_size(1024), 10 * MIB),
    _k("server", "state_dir", "DHIS2GW_STATE_DIR", nonempty_text, "/var/lib/dhis2gw"),
    _k("server", "plugins_directory", "DHIS2GW_PLUGINS_DIR", nonempty_text, "./plugins"),
    _k("server", "workers", "DHIS2GW_WORKERS", _PLUS, 1),
    _k("server", "access_log", "DHIS2GW_ACCESS_LOG", boolean, False),
    _k("server", "shutdown_timeout", "DHIS2GW_SHUTDOWN_TIMEOUT", seconds(), 30.0),
    _k("server", "trusted_proxies", "DHIS2GW_TRUSTED_PROXIES", networks, ()),
    _k("server", "header_timeout", "DHIS2GW_HEADER_TIMEOUT", seconds(), 10.0),
    _k("server", "body_timeout", "DHIS2GW_BODY_TIMEOUT", seconds(), 120.0),
    _k("server", "min_body_rate", "DHIS2GW_MIN_BODY_RATE", byte_size(0), 1024),
    _k("server", "max_connections_per_address", "DHIS2GW_MAX_CONNECTIONS_PER_ADDRESS", _PLUS, 64),
    _k("api", "dhis2_country", "dhis2_country", text, ""),
    _k("api", "dhis2_base_url", "dhis2_base_url", dhis2_url, "", url=True),
    _k("api", "dhis2_user", "dhis2_user", text, ""),
    _k("api", "dhis2_password", "dhis2_password", text, "", secret=True),
    _k("api", "dhis2_pat", "dhis2_pat", text, "", secret=True),
    _k("api", "save_response", "save_response", boolean, True),
    _k("api", "mapping_scheme", "mapping_scheme", choice("CODE", "UID", "NAME"), "CODE"),
    _k("api", "dhis2_data_set", "dhis2_data_set", text, ""),
    _k("api", "dhis2_attribute_option_combo", ("dhis_2_attribute_option_combo", "dhis2_attribute_option_combo"),
       text, ""),
    _k("api", "dhis2_auth_method", "dhis2_auth_method", _AUTH_METHOD, ""),
    _k("api", "dhis2_tree_i_ds", "dhis2_tree_i_ds", comma_list, (), aliases=(("api", "dhis2_tree_ids"),)),
    _k("api", "dhis2_facility_level", "dhis2_facility_level", _PLUS, 5),
    _k("api", "dhis2_district_oulevel_name", "DHIS2GW_DHIS2_DISTRICT_OULEVEL_NAME", text, "District/City"),
    _k("api", "cc_dhis2_servers", "cc_dhis2_servers", comma_list, ()),
    _k("api", "cc_dhis2_hierarchy_servers", "cc_dhis2_hierarchy_servers", comma_list, ()),
    _k("api", "cc_dhis2_create_servers", "cc_dhis2_create_servers", comma_list, ()),
    _k("api", "cc_dhis2_update_servers", "cc_dhis2_update_servers", comma_list, ()),
    _k("api", "cc_dhis2_ou_group_add_servers", "cc_dhis2_ou_group_add_servers", comma_list, (),
       aliases=(("api", "cc_dhis2_ougroup_add_servers"),)),
    _k("api", "sync_cron_expression", "sync_cron_expression", cron_expression, "0 0-23/6 * * *"),
    _k("api", "retry_cron_expression", "retry_cron_expression", cron_expression, "*/5 * * * *"),
    _k("auth", "jwt_secret", "DHIS2GW_JWT_SECRET", text, "", secret=True),
    _k("auth", "jwt_secret_file", "DHIS2GW_JWT_SECRET_FILE", text, ""),
    _k("auth", "jwt_issuer", "DHIS2GW_JWT_ISSUER", nonempty_text, "dhis2gw"),
    _k("auth", "access_token_ttl", "DHIS2GW_ACCESS_TOKEN_TTL", seconds(as_int=True), 900),
    _k("auth", "refresh_token_ttl", "DHIS2GW_REFRESH_TOKEN_TTL", seconds(as_int=True), 604800),
    _k("auth", "basic_auth_cache_seconds", "DHIS2GW_BASIC_AUTH_CACHE_SECONDS",
       seconds(above=False, as_int=True), 60),
    _k("auth", "login_max_failures", "DHIS2GW_LOGIN_MAX_FAILURES", _PLUS, 5),
    _k("auth", "login_lockout_seconds", "DHIS2GW_LOGIN_LOCKOUT_SECONDS", seconds(above=False, as_int=True), 300),
    _k("auth", "login_lockout_max_seconds", "DHIS2GW_LOGIN_LOCKOUT_MAX_SECONDS",
       seconds(above=False, as_int=True), 3600),
    _k("auth", "password_min_length", "DHIS2GW_PASSWORD_MIN_LENGTH", _PLUS, 10),
    _k("queue", "prefix", "DHIS2GW_QUEUE_PREFIX", queue_prefix, "dhis2gw", aliases=(("server", "queue_prefix"),)),
    _k("queue", "lease_seconds", "DHIS2GW_QUEUE_LEASE_SECONDS", seconds(), 60.0),
    _k("queue", "heartbeat_seconds", "DHIS2GW_QUEUE_HEARTBEAT_SECONDS", seconds(), 15.0),
    _k("queue", "redis_timeout", "DHIS2GW_REDIS_TIMEOUT", seconds(), 2.0),
    _k("delivery", "backoff_base", "DHIS2GW_BACKOFF_BASE", seconds(), 30.0),
    _k("delivery", "backoff_cap", "DHIS2GW_BACKOFF_CAP", seconds(), 3600.0),
    _k("delivery", "breaker_threshold", "DHIS2GW_BREAKER_THRESHOLD", _PLUS, 5),
    _k("delivery", "breaker_probe_interval", "DHIS2GW_BREAKER_PROBE_INTERVAL", seconds(), 15.0),
    _k("delivery", "connect_timeout", "DHIS2GW_DHIS2_CONNECT_TIMEOUT", seconds(), 10.0),
    _k("delivery", "read_timeout", "DHIS2GW_DHIS2_READ_TIMEOUT", seconds(), 120.0),
    _k("delivery", "max_response_bytes", "DHIS2GW_MAX_RESPONSE_BYTES", byte_size(1024), 20 * MIB),
    _k("delivery", "tracker_async_threshold_bytes", "DHIS2GW_TRACKER_ASYNC_THRESHOLD", byte_size(0), 1 * MIB),
    _k("delivery", "batch_enabled", "DHIS2GW_BATCH_ENABLED", boolean, False),
    _k("delivery", "batch_max_values", "DHIS2GW_BATCH_MAX_VALUES", _PLUS, 5000),
    _k("delivery", "batch_max_bytes", "DHIS2GW_BATCH_MAX_BYTES", byte_size(1024), 2 * MIB),
    _k("delivery", "batch_linger_ms", "DHIS2GW_BATCH_LINGER_MS", _NONNEG, 50),
    _k("request_log", "enabled", "DHIS2GW_REQUEST_LOG", boolean, True),
    _k("request_log", "flush_interval", "DHIS2GW_REQUEST_LOG_FLUSH_INTERVAL", seconds(), 0.2),
    _k("request_log", "batch_size", "DHIS2GW_REQUEST_LOG_BATCH_SIZE", _PLUS, 500),
    _k("request_log", "max_buffer", "DHIS2GW_REQUEST_LOG_MAX_BUFFER", _PLUS, 10000),
    _k("request_log", "body_excerpt_bytes", "DHIS2GW_REQUEST_LOG_BODY_EXCERPT_BYTES", byte_size(0), 2048),
    _k("request_log", "retention_days", "DHIS2GW_REQUEST_LOG_RETENTION_DAYS", integer(0, 36500), 90),
)

SECTIONS = ("database", "server", "api", "auth", "queue", "delivery", "request_log")

# Fields of one `servers:` entry; the environment can override them for a server the file defines
# with DHIS2GW_SERVERS_<NAME>_<FIELD> (NAME upper-cased, '-' as '_'), so passwords can stay out of the file.
SERVER_ENTRY_KEYS: dict[str, tuple[Parser, bool]] = {
    "base_url": (dhis2_url, False),
    "auth_method": (_AUTH_METHOD, False),
    "user": (text, False),
    "password": (text, True),
    "pat": (text, True),
    "max_concurrent": (_PLUS, False),
    "enabled": (boolean, False),
    "instance_name": (text, False),
}
SERVER_NAME = re.compile(r"^[a-z0-9_-]+$")

# Keys of the original Go dhis2gw that had no effect there (or belong to its separate pbs_sync tool).
# They are accepted so an existing /etc/dhis2gw/dhis2gw.yml still loads, and reported in
# Config.ignored_keys so start-up and check-config can say they are ignored.
LEGACY_IGNORED: dict[str, frozenset[str]] = {
    "database": frozenset({"db_host", "db_port", "db_username", "db_password"}),
    "server": frozenset({
        "proxy_port", "start_submission_period", "end_submission_period", "skip_request_processing",
        "force_sync", "sync_on", "fake_sync_to_base_dhis2", "dhis2_job_status_check_interval",
        "use_ssl", "ssl_client_certkey_file", "ssl_server_certkey_file", "ssl_trusted_cafile",
    }),
    "api": frozenset({"metadata_batch_size", "dhis2_ou_mflid_attribute_id", "authtoken"}),
}
LEGACY_IGNORED_SECTIONS = frozenset({"pbs"})
