"""
The table of every dhis2gw configuration key and the parsers that turn raw values into typed ones.

`dhis2gw.config` builds the frozen dataclasses from this table; keeping the table in one place means the
YAML reader, the environment reader, the tests and the documentation in ``conf/dhis2gw.yml`` all agree
on a key's name, environment variable and default.  Environment variable names are those of the
original Go dhis2gw's configuration reference, typos included (``DHIS2GW_MIGRATTIONS_DIR``,
``dhis_2_attribute_option_combo``), so existing deployments keep working.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlunsplit

from dhis2gw.config.sections import EMBEDDED, InvalidValue, parse_redis_address, split_url

MIB = 1024 * 1024
DEFAULT_DATABASE_URI = "postgres://username:password@localhost/dhis2gw?sslmode=disable"


Parser = Callable[[Any], Any]


def _scalar_text(raw: Any) -> str:
    """Accept YAML strings and numbers as text; reject booleans, lists and mappings."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise InvalidValue("is not a string")
    return str(raw).strip()


def text(raw: Any) -> str:
    """Free text (may be empty)."""
    return _scalar_text(raw)


def nonempty_text(raw: Any) -> str:
    """Text that must not be empty (paths, host names)."""
    value = _scalar_text(raw)
    if not value:
        raise InvalidValue("must not be empty")
    return value


def boolean(raw: Any) -> bool:
    """true/false, yes/no, on/off, 1/0 in any case."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    value = str(raw).strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise InvalidValue("is not a boolean (use true/false, yes/no or 1/0)")


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    """An integer parser with an inclusive range."""

    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise InvalidValue("is not an integer")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        try:
            value = raw if isinstance(raw, int) else int(str(raw).strip().replace("_", ""))
        except ValueError:
            raise InvalidValue("is not an integer") from None
        _check_range(value, minimum, maximum)
        return value

    return parse


def tcp_port(raw: Any) -> int:
    """A TCP port number, 1-65535."""
    try:
        return int(integer(1, 65535)(raw))
    except InvalidValue:
        raise InvalidValue("is not a valid TCP port") from None


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?$")


def seconds(minimum: float = 0.0, *, above: bool = True, as_int: bool = False) -> Parser:
    """
    A duration in seconds: a number, or a number with a unit (``500ms``, ``30s``, ``15m``, ``6h``, ``7d``).

    ``above`` makes the minimum exclusive (timeouts and intervals must be > 0).
    """

    def parse(raw: Any) -> float | int:
        if isinstance(raw, bool):
            raise InvalidValue("is not a duration")
        if isinstance(raw, (int, float)):
            value = float(raw)
        else:
            match = _DURATION.match(str(raw).strip().lower())
            if match is None:
                raise InvalidValue("is not a duration (seconds, or a number with ms/s/m/h/d)")
            value = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
        if value < minimum or (above and value == minimum):
            raise InvalidValue(f"must be {'greater than' if above else 'at least'} {minimum:g} seconds")
        if as_int:
            if not value.is_integer():
                raise InvalidValue("must be a whole number of seconds")
            return int(value)
        return value

    return parse


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": MIB, "mb": 1000**2, "mib": MIB,
               "g": 1024**3, "gb": 1000**3, "gib": 1024**3}
_SIZE = re.compile(r"^(\d+)\s*([a-z]*)$")


def byte_size(minimum: int = 0) -> Parser:
    """A size in bytes: an integer, or with a unit (``512KiB``, ``10MiB``, ``1GB``, ``2M``)."""

    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise InvalidValue("is not a size in bytes")
        if isinstance(raw, int):
            value = raw
        else:
            match = _SIZE.match(str(raw).strip().lower().replace("_", ""))
            if match is None or match.group(2) not in _SIZE_UNITS:
                raise InvalidValue("is not a size in bytes (an integer, or with KiB/MiB/GiB)")
            value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
        _check_range(value, minimum, None)
        return value

    return parse


def _check_range(value: int, minimum: int | None, maximum: int | None) -> None:
    if minimum is not None and value < minimum:
        raise InvalidValue(f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidValue(f"must be at most {maximum}")


def comma_list(raw: Any) -> tuple[str, ...]:
    """A comma-separated string, or a YAML list, of non-empty items."""
    if isinstance(raw, (list, tuple)):
        items = [_scalar_text(item) for item in raw]
    else:
        items = _scalar_text(raw).split(",")
    return tuple(item.strip() for item in items if item.strip())


def networks(raw: Any) -> tuple[str, ...]:
    """A comma-separated string, or a YAML list, of IP addresses or CIDR networks (kept as text)."""
    import ipaddress

    items = comma_list(raw)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise InvalidValue(f"{item!r} is not an IP address or network (use CIDR, e.g. 10.0.0.0/8)") from None
    return items


def choice(*allowed: str, synonyms: dict[str, str] | None = None, upper: bool = False) -> Parser:
    """One of a fixed set of words, matched case-insensitively and returned in canonical case."""
    table = {word.lower(): word for word in allowed}
    table.update({alias.lower(): word for alias, word in (synonyms or {}).items()})

    def parse(raw: Any) -> str:
        value = _scalar_text(raw)
        try:
            return table[value.lower()]
        except KeyError:
            shown = ", ".join([word for word in allowed if word] + list(synonyms or ()))
            raise InvalidValue(f"is not one of {shown}") from None

    return parse


def timezone_name(raw: Any) -> str:
    """An IANA time zone name, checked against the system's zone database."""
    value = nonempty_text(raw)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidValue("is not a known IANA time zone (e.g. Africa/Kampala, UTC)") from None
    return value


def cron_expression(raw: Any) -> str:
    """A five-field crontab expression, checked with APScheduler's own parser."""
    # Only the trigger module: apscheduler.schedulers.twisted would install a reactor.
    from apscheduler.triggers.cron import CronTrigger

    value = " ".join(nonempty_text(raw).split())
    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as e:
        reason = str(e).splitlines()[0] if str(e) else "invalid"
        raise InvalidValue(f"is not a valid cron expression ({reason})") from None
    return value


_QUEUE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+$")


def queue_prefix(raw: Any) -> str:
    """A Redis key prefix: letters, digits, ``_ . -`` only, so keys stay unambiguous.

    Empty means the default ``dhis2gw``: the original's ``server.queue_prefix`` was empty unless
    set, and its configuration files must load as they are.
    """
    value = _scalar_text(raw) or "dhis2gw"
    if not _QUEUE_PREFIX.match(value):
        raise InvalidValue("may contain only letters, digits, '_', '.' and '-'")
    return value


_API_SUFFIX = re.compile(r"/api(/\d+)?$")


def dhis2_url(raw: Any) -> str:
    """
    A DHIS2 instance URL, normalised to the instance root: no trailing ``/``, no ``/api`` or ``/api/40``.

    The original appended ``/api/...`` to whatever it was given, so a configured ``…/api/`` gave 404s;
    here both spellings mean the same instance.  Empty means "not configured".
    """
    value = _scalar_text(raw)
    if not value:
        return ""
    parts = split_url(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidValue("is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidValue("must not contain credentials (use the user/password/pat keys)")
    if parts.query or parts.fragment:
        raise InvalidValue("must not contain a query or fragment")
    path = parts.path.rstrip("/")
    path = _API_SUFFIX.sub("", path).rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def database_uri(raw: Any) -> str:
    """``embedded`` or a ``postgres://`` / ``postgresql://`` URI that libpq can use."""
    value = nonempty_text(raw)
    if value.lower() == EMBEDDED:
        return EMBEDDED
    if split_url(value).scheme not in ("postgres", "postgresql"):
        raise InvalidValue("is not a postgres:// URI or 'embedded'")
    return value


def redis_address(raw: Any) -> str:
    """``embedded``, ``host:port``, ``host`` or ``redis://[:password@]host[:port][/db]``."""
    value = nonempty_text(raw)
    if value.lower() == EMBEDDED:
        return EMBEDDED
    parse_redis_address(value)
    return value


def migrations_location(raw: Any) -> str:
    """A ``file://`` URL (as the original used) or a plain directory path."""
    value = nonempty_text(raw)
    if "://" in value and not value.startswith("file://"):
        raise InvalidValue("is not a directory path or a file:// URL")
    return value


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
