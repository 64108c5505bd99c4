"""
The frozen dataclasses of dhis2gw's configuration.

Build them with `dhis2gw.config.load_config`; every class here is immutable, and its ``repr`` and
``redacted()`` never show a secret (DHIS2 passwords and tokens, the JWT secret, passwords in URIs).
The errors live in `dhis2gw.config.errors` and the URL helpers in `dhis2gw.config.urls`; both are
importable from here as well.
"""

from __future__ import annotations

import dataclasses
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from dhis2gw.config.errors import ConfigError, InvalidValue
from dhis2gw.config.urls import RedisTarget, file_url_to_path, parse_redis_address, redact_url, split_url

__all__ = [
    "EMBEDDED", "ApiConfig", "AuthConfig", "Config", "ConfigError", "DatabaseConfig", "DeliveryConfig",
    "InvalidValue", "QueueConfig", "RedisTarget", "RequestLogConfig", "ServerConfig", "ServerEntry",
    "file_url_to_path", "parse_redis_address", "redact_url", "split_url",
]

EMBEDDED = "embedded"  # database.uri / server.redis_address value: start a private server


class _Section:
    """Shared ``redacted()`` and ``__repr__`` for the section dataclasses: secrets never leave as text."""

    _secret_fields: ClassVar[frozenset[str]] = frozenset()
    _url_fields: ClassVar[frozenset[str]] = frozenset()

    def redacted(self) -> dict[str, Any]:
        """The fields as a JSON-friendly dict, secrets set to ``"***"`` and URI passwords masked."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._secret_fields:
                value = "***" if value else value
            elif f.name in self._url_fields:
                value = redact_url(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={redact_url(getattr(self, f.name)) if f.name in self._url_fields else getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in self._secret_fields)
        return f"{type(self).__name__}({shown})"


@dataclass(frozen=True, repr=False)
class DatabaseConfig(_Section):
    """``database:`` — where PostgreSQL is; ``uri`` may be ``embedded`` (start a private server)."""

    _url_fields = frozenset({"uri"})
    uri: str

    @property
    def is_embedded(self) -> bool:
        """True when the gateway should start its own PostgreSQL (``uri: embedded``)."""
        return self.uri == EMBEDDED

    @property
    def redacted_uri(self) -> str:
        """The URI with its password replaced by ``***``: the only form fit for logs."""
        return redact_url(self.uri)

    def dsn_kwargs(self) -> dict[str, str]:
        """
        libpq connection keywords (host, port, dbname, user, password and every query parameter
        such as sslmode) from the postgres:// URI; percent-escapes are decoded.
        """
        if self.is_embedded:
            raise ConfigError("database.uri: 'embedded' has no DSN until the embedded server has started")
        parts = urlsplit(self.uri)
        userinfo, _, hostport = parts.netloc.rpartition("@")
        kwargs: dict[str, str] = {}
        hosts, ports = [], []
        for item in hostport.split(","):  # libpq allows host1:port1,host2:port2
            if item.startswith("["):
                host, _, rest = item[1:].partition("]")
                port = rest[1:]
            else:
                host, _, port = item.partition(":")
            hosts.append(unquote(host))
            ports.append(port)
        if any(hosts):
            kwargs["host"] = ",".join(hosts)
        if any(ports):
            kwargs["port"] = ",".join(ports)
        if parts.path.strip("/"):
            kwargs["dbname"] = unquote(parts.path.lstrip("/"))
        user, has_password, password = userinfo.partition(":")
        if user:
            kwargs["user"] = unquote(user)
        if has_password:
            kwargs["password"] = unquote(password)
        kwargs.update(parse_qsl(parts.query, keep_blank_values=True))
        return kwargs

    def dsn(self) -> str:
        """A libpq keyword/value connection string for psycopg2 (contains the password: never log it)."""
        return " ".join(f"{name}={_libpq_quote(value)}" for name, value in self.dsn_kwargs().items())


def _libpq_quote(value: str) -> str:
    if value and not any(c in value for c in " '\\\t\n"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, repr=False)
class ServerConfig(_Section):
    """``server:`` — the HTTP listener, Redis, directories, time zone and process-wide limits."""

    _url_fields = frozenset({"redis_address"})
    host: str
    port: int
    redis_address: str
    redis_db: int  # effective database: the one in a redis:// address wins
    max_retries: int
    max_concurrent: int
    request_process_interval: float
    templates_directory: str
    static_directory: str
    logdir: str
    log_to_stdout: bool
    docs_directory: str
    migrations_dir: str
    timezone: str
    max_body_bytes: int
    state_dir: str
    plugins_directory: str
    workers: int
    access_log: bool
    shutdown_timeout: float
    trusted_proxies: tuple[str, ...]
    header_timeout: float
    body_timeout: float
    min_body_rate: int
    max_connections_per_address: int
    log_level: str = "info"  # debug | info | warn | error | critical: the lowest level written

    @property
    def redis_embedded(self) -> bool:
        """True when the gateway should start its own Redis (``redis_address: embedded``)."""
        return self.redis_address == EMBEDDED

    @property
    def redis_host(self) -> str:
        """Redis host name or address ("" when embedded)."""
        return "" if self.redis_embedded else parse_redis_address(self.redis_address).host

    @property
    def redis_port(self) -> int:
        """Redis TCP port (0 when embedded)."""
        return 0 if self.redis_embedded else parse_redis_address(self.redis_address).port

    @property
    def redis_password(self) -> str | None:
        """The password of a ``redis://:password@host`` address, else None."""
        return None if self.redis_embedded else parse_redis_address(self.redis_address).password

    @property
    def migrations_path(self) -> str:
        """``migrations_dir`` as a filesystem path (``file://`` URLs, as the original used, are converted)."""
        return file_url_to_path(self.migrations_dir)

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        """The deployment time zone as a tzinfo."""
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True, repr=False)
class ApiConfig(_Section):
    """``api:`` — the main DHIS2 instance, mapping scheme, org-unit sync and CC servers, cron schedules."""

    _secret_fields = frozenset({"dhis2_password", "dhis2_pat"})
    dhis2_country: str
    dhis2_base_url: str  # the instance root: no trailing "/" and no "/api"; "" = not configured
    dhis2_user: str
    dhis2_password: str = field(repr=False)
    dhis2_pat: str = field(repr=False)
    save_response: bool
    mapping_scheme: str  # CODE | UID | NAME
    dhis2_data_set: str
    dhis2_attribute_option_combo: str
    dhis2_auth_method: str  # resolved: "basic" or "pat"
    dhis2_tree_i_ds: tuple[str, ...]
    dhis2_facility_level: int
    dhis2_district_oulevel_name: str
    cc_dhis2_servers: tuple[str, ...]
    cc_dhis2_hierarchy_servers: tuple[str, ...]
    cc_dhis2_create_servers: tuple[str, ...]
    cc_dhis2_update_servers: tuple[str, ...]
    cc_dhis2_ou_group_add_servers: tuple[str, ...]
    sync_cron_expression: str
    retry_cron_expression: str

    @property
    def dhis2_api_url(self) -> str:
        """``<root>/api`` of the main DHIS2 ("" when not configured)."""
        return f"{self.dhis2_base_url}/api" if self.dhis2_base_url else ""


@dataclass(frozen=True, repr=False)
class AuthConfig(_Section):
    """``auth:`` — JWT signing, token lifetimes (seconds), login throttling, password policy."""

    _secret_fields = frozenset({"jwt_secret"})
    jwt_secret: str = field(repr=False)
    jwt_secret_file: str
    jwt_issuer: str
    access_token_ttl: int
    refresh_token_ttl: int
    basic_auth_cache_seconds: int
    login_max_failures: int
    login_lockout_seconds: int
    login_lockout_max_seconds: int
    password_min_length: int


@dataclass(frozen=True, repr=False)
class QueueConfig(_Section):
    """``queue:`` — Redis key prefix, claim lease and heartbeat (seconds), Redis command timeout."""

    prefix: str
    lease_seconds: float
    heartbeat_seconds: float
    redis_timeout: float


@dataclass(frozen=True, repr=False)
class DeliveryConfig(_Section):
    """``delivery:`` — backoff, breaker, DHIS2 HTTP timeouts and limits, aggregate batching."""

    backoff_base: float
    backoff_cap: float
    breaker_threshold: int
    breaker_probe_interval: float
    connect_timeout: float
    read_timeout: float
    max_response_bytes: int
    tracker_async_threshold_bytes: int
    batch_enabled: bool
    batch_max_values: int
    batch_max_bytes: int
    batch_linger_ms: int


@dataclass(frozen=True, repr=False)
class RequestLogConfig(_Section):
    """``request_log:`` — the buffered writer of request_log rows."""

    enabled: bool
    flush_interval: float
    batch_size: int
    max_buffer: int
    body_excerpt_bytes: int
    retention_days: int


@dataclass(frozen=True, repr=False)
class ServerEntry(_Section):
    """One DHIS2 destination: an entry of ``servers:``, or ``main`` built from the ``api:`` keys."""

    _secret_fields = frozenset({"password", "pat"})
    name: str
    base_url: str  # instance root, no "/api"
    auth_method: str  # "basic" or "pat"
    user: str
    password: str = field(repr=False)
    pat: str = field(repr=False)
    max_concurrent: int
    enabled: bool
    instance_name: str

    @property
    def api_url(self) -> str:
        """``<root>/api``."""
        return f"{self.base_url}/api"


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; build it with `load_config`."""

    database: DatabaseConfig
    server: ServerConfig
    api: ApiConfig
    auth: AuthConfig
    queue: QueueConfig
    delivery: DeliveryConfig
    request_log: RequestLogConfig
    servers: dict[str, ServerEntry]
    environment: str  # "production" | "development"
    ignored_keys: tuple[str, ...] = ()  # unused keys of the original dhis2gw found in the file

    @property
    def is_development(self) -> bool:
        """True for ``environment: development``."""
        return self.environment == "development"

    def destinations(self) -> dict[str, ServerEntry]:
        """
        Enabled DHIS2 destinations by name: ``main`` (from ``api:``, when dhis2_base_url is set) first,
        then the enabled ``servers:`` entries in file order.
        """
        out: dict[str, ServerEntry] = {}
        api = self.api
        if api.dhis2_base_url:
            out["main"] = ServerEntry(name="main", base_url=api.dhis2_base_url, auth_method=api.dhis2_auth_method,
                                      user=api.dhis2_user, password=api.dhis2_password, pat=api.dhis2_pat,
                                      max_concurrent=self.server.max_concurrent, enabled=True,
                                      instance_name="main")
        out.update((name, entry) for name, entry in self.servers.items() if entry.enabled)
        return out

    def redacted(self) -> dict[str, Any]:
        """The configuration as nested dicts for printing, secrets replaced by ``"***"``."""
        return {
            "environment": self.environment,
            **{name: getattr(self, name).redacted() for name in
               ("database", "server", "api", "auth", "queue", "delivery", "request_log")},
            "servers": {name: entry.redacted() for name, entry in self.servers.items()},
            "ignored_keys": list(self.ignored_keys),
        }
