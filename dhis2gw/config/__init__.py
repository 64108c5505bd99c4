"""
Typed, validated dhis2gw configuration: defaults, overridden by a YAML file, overridden by the environment.

Every key, its environment variable and its default are listed once in `dhis2gw.config.schema.KEYS`;
``conf/dhis2gw.yml`` documents them for operators.  Loading is strict: an unknown key, a bad value or a
missing required secret raises `ConfigError` with one line naming the key, so a typo stops start-up
instead of silently using a default (the original ignored its own sample file's typos).  Two typos of
the original's sample file are accepted as aliases for compatibility: ``api.dhis2_tree_ids`` (for
``dhis2_tree_i_ds``) and ``api.cc_dhis2_ougroup_add_servers`` (for ``cc_dhis2_ou_group_add_servers``),
as are the original's ``server.http_port`` (for ``port``) and ``server.queue_prefix`` (for
``queue.prefix``).  Keys the original accepted but never used are ignored and listed in
`Config.ignored_keys`.  An environment variable set to the empty string counts as unset.

Secrets (DHIS2 passwords and tokens, the JWT secret, passwords inside URIs) never appear in a
``repr``, in `Config.redacted`, or in an error message.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dhis2gw.config.schema import (
    KEYS,
    LEGACY_IGNORED,
    LEGACY_IGNORED_SECTIONS,
    SECTIONS,
    SERVER_ENTRY_KEYS,
    SERVER_NAME,
    Key,
)
from dhis2gw.config.sections import (
    ApiConfig,
    AuthConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    DeliveryConfig,
    InvalidValue,
    QueueConfig,
    RequestLogConfig,
    ServerConfig,
    ServerEntry,
    parse_redis_address,
    redact_url,
)

__all__ = [
    "ApiConfig", "AuthConfig", "Config", "ConfigError", "DatabaseConfig", "DeliveryConfig", "QueueConfig",
    "RequestLogConfig", "ServerConfig", "ServerEntry", "DEV_CONFIG_PATH", "MIN_JWT_SECRET_LENGTH",
    "load_config", "check_config", "ensure_dev_secret",
]

# conf/dev.yml of a source checkout (the embedded development default); absent from an installed package.
DEV_CONFIG_PATH = Path(__file__).resolve().parents[2] / "conf" / "dev.yml"
MIN_JWT_SECRET_LENGTH = 32
_SECTION_CLASSES: dict[str, type] = {
    "database": DatabaseConfig, "server": ServerConfig, "api": ApiConfig, "auth": AuthConfig,
    "queue": QueueConfig, "delivery": DeliveryConfig, "request_log": RequestLogConfig,
}
_CC_KEYS = ("cc_dhis2_servers", "cc_dhis2_hierarchy_servers", "cc_dhis2_create_servers",
            "cc_dhis2_update_servers", "cc_dhis2_ou_group_add_servers")


def load_config(path: str | None, environ: Mapping[str, str]) -> Config:
    """
    Load the configuration: defaults, then the YAML file at ``path`` (if any), then ``environ``.

    Raises `ConfigError` (one line naming the key) for a missing or unreadable file, invalid YAML,
    an unknown key or a bad value.  Does not create anything on disk; see `ensure_dev_secret`.
    """
    return _Loader(path, environ).load()


def check_config(path: str | None, environ: Mapping[str, str]) -> str:
    """
    Validate like start-up does and return a short human summary (the ``dhis2gw check-config`` output).

    Raises `ConfigError` with the same one-line message start-up would log.  A production
    configuration without a JWT secret is an error here too: the service would refuse to start.
    """
    loader = _Loader(path, environ)
    config = loader.load()
    server, api, auth = config.server, config.api, config.auth
    redis = "embedded" if server.redis_embedded else f"{server.redis_host}:{server.redis_port} db {server.redis_db}"
    if auth.jwt_secret:
        secret = f"set (from {loader.sources['auth.jwt_secret']})"
    else:
        dev_file = Path(server.state_dir) / "jwt_secret"
        secret = f"development: kept in {dev_file}" + ("" if dev_file.exists() else " (generated at start-up)")
    destinations = config.destinations()
    disabled = sorted(name for name, entry in config.servers.items() if not entry.enabled)
    lines = [
        f"configuration OK: {path or '(defaults only)'}",
        f"environment: {config.environment}",
        f"listen: {server.host}:{server.port}",
        f"database: {config.database.redacted_uri}",
        f"redis: {redis}, queue prefix {config.queue.prefix!r}",
        f"DHIS2: {api.dhis2_base_url or 'not configured'}"
        + (f" (auth {api.dhis2_auth_method})" if api.dhis2_base_url else ""),
        "destinations: " + (", ".join(destinations) or "none")
        + (f" (disabled: {', '.join(disabled)})" if disabled else ""),
        f"jwt secret: {secret}",
        f"migrations: {server.migrations_path}",
    ]
    if config.ignored_keys:
        lines.append("ignored (unused keys of the original dhis2gw): " + ", ".join(config.ignored_keys))
    return "\n".join(lines)


def ensure_dev_secret(config: Config) -> Config:
    """
    In development, give a configuration without a JWT secret one, persisted in ``<state_dir>/jwt_secret``.

    The file is created with mode 0600 (and the state directory with 0700) so restarts keep issued
    tokens valid.  Production configurations and configurations that already have a secret are
    returned unchanged: production must be given its secret explicitly.  Blocking file I/O: call it at
    start-up, before the reactor runs.
    """
    if config.environment != "development" or config.auth.jwt_secret:
        return config
    path = Path(config.server.state_dir) / "jwt_secret"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) < MIN_JWT_SECRET_LENGTH:
            raise ConfigError(f"auth.jwt_secret: the secret in {path} is shorter than "
                              f"{MIN_JWT_SECRET_LENGTH} characters; delete the file to regenerate it") from None
    else:
        secret = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
    return dataclasses.replace(config, auth=dataclasses.replace(config.auth, jwt_secret=secret))


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise ConfigError(f"config file {path}: invalid YAML{where}: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    return document


def _unknown(what: str, key: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{what}: unknown key in {where}{hint}")


class _Loader:
    """One load: reads the file, merges environment and defaults, validates, remembers each value's source."""

    def __init__(self, path: str | None, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.document = _read_yaml(path) if path is not None else {}
        self.sources: dict[str, str] = {}
        self.ignored: list[str] = []

    def load(self) -> Config:
        sections = self._check_structure()
        values: dict[str, dict[str, Any]] = {name: {} for name in ("", *SECTIONS)}
        for key in KEYS:
            values[key.section][key.name] = self._value(key, sections)
        self._check_server(values["server"])
        self._check_ranges(values)
        self._check_secret(values["auth"], values[""]["environment"])
        api = values["api"]
        api["dhis2_auth_method"] = _resolve_auth(
            "api.", api["dhis2_auth_method"], api["dhis2_user"], api["dhis2_password"], api["dhis2_pat"],
            ("dhis2_user", "dhis2_password", "dhis2_pat"), required=bool(api["dhis2_base_url"]))
        servers = self._servers(values["server"]["max_concurrent"])
        for cc_key in _CC_KEYS:
            for name in api[cc_key]:
                if name not in servers:
                    known = ", ".join(sorted(servers)) or "none; define it under servers:"
                    raise ConfigError(f"api.{cc_key}: unknown server {name!r} (known: {known})")
        built = {name: cls(**values[name]) for name, cls in _SECTION_CLASSES.items()}
        return Config(environment=values[""]["environment"], servers=servers,
                      ignored_keys=tuple(sorted(self.ignored)), **built)

    def _where(self) -> str:
        return str(self.path)

    def _check_structure(self) -> dict[str, dict[str, Any]]:
        known_top = {*SECTIONS, "servers", *(k.name for k in KEYS if not k.section)}
        sections: dict[str, dict[str, Any]] = {"": {}}
        for top, body in self.document.items():
            top = str(top)
            if top in LEGACY_IGNORED_SECTIONS:
                self.ignored.append(top)
            elif top not in known_top:
                raise _unknown(top, top, sorted(known_top), self._where())
            elif top in SECTIONS:
                if body is None:
                    body = {}
                if not isinstance(body, dict):
                    raise ConfigError(f"{top}: must be a mapping of keys in {self._where()}")
                names = {k.name for k in KEYS if k.section == top}
                names |= {alias for k in KEYS for section, alias in k.aliases if section == top}
                for name in body:
                    name = str(name)
                    if name in LEGACY_IGNORED.get(top, ()):
                        self.ignored.append(f"{top}.{name}")
                    elif name not in names:
                        raise _unknown(f"{top}.{name}", name, sorted(names), self._where())
                sections[top] = {str(name): value for name, value in body.items()}
            elif top != "servers":
                sections[""][top] = body
        return sections

    def _value(self, key: Key, sections: dict[str, dict[str, Any]]) -> Any:
        from_env = [(name, self.environ[name]) for name in key.env if self.environ.get(name, "") != ""]
        if len({value for _, value in from_env}) > 1:
            raise ConfigError(f"{key.path}: {from_env[0][0]} and {from_env[1][0]} are both set and disagree")
        from_file = [(f"{section + '.' if section else ''}{name}", sections.get(section, {}).get(name))
                     for section, name in ((key.section, key.name), *key.aliases)]
        from_file = [(spelling, value) for spelling, value in from_file if value is not None]
        if len(from_file) > 1:
            raise ConfigError(f"{key.path}: set twice in {self._where()} (as {from_file[0][0]} "
                              f"and {from_file[1][0]})")
        raw: Any  # text from the environment, any YAML value from the file
        if from_env:
            source, raw = from_env[0]
        elif from_file:
            source, raw = self._where(), from_file[0][1]
        else:
            self.sources[key.path] = "default"
            return key.default
        self.sources[key.path] = source
        try:
            return key.parse(raw)
        except InvalidValue as e:
            raise ConfigError(f"{key.path}: {_shown(key, raw)} {e} (from {source})") from None

    def _source(self, path: str) -> str:
        source = self.sources.get(path, "default")
        return "" if source == "default" else f" (from {source})"

    def _check_server(self, server: dict[str, Any]) -> None:
        if server["redis_address"] == "embedded":
            return
        target = parse_redis_address(server["redis_address"])
        if target.db is not None:
            if self.sources["server.redis_db"] != "default" and server["redis_db"] != target.db:
                raise ConfigError(f"server.redis_db: {server['redis_db']} disagrees with database {target.db} "
                                  f"named in server.redis_address{self._source('server.redis_db')}")
            server["redis_db"] = target.db

    def _check_ranges(self, values: dict[str, dict[str, Any]]) -> None:
        pairs = (  # (smaller key, larger key, strictly smaller?)
            ("queue.heartbeat_seconds", "queue.lease_seconds", True),
            ("delivery.backoff_base", "delivery.backoff_cap", False),
            ("request_log.batch_size", "request_log.max_buffer", False),
            ("auth.access_token_ttl", "auth.refresh_token_ttl", False),
        )
        for small, large, strict in pairs:
            a = values[small.split(".")[0]][small.split(".")[1]]
            b = values[large.split(".")[0]][large.split(".")[1]]
            if a > b or (strict and a == b):
                relation = "less than" if strict else "at most"
                raise ConfigError(f"{small}: {a:g} must be {relation} {large} ({b:g}){self._source(small)}")

    def _check_secret(self, auth: dict[str, Any], environment: str) -> None:
        if not auth["jwt_secret"] and auth["jwt_secret_file"]:
            secret_file = Path(auth["jwt_secret_file"])
            try:
                auth["jwt_secret"] = secret_file.read_text(encoding="utf-8").strip()
                self.sources["auth.jwt_secret"] = str(secret_file)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise ConfigError(f"auth.jwt_secret_file: {secret_file} cannot be read ({e.strerror}); "
                                  "run as the dhis2gw user or root") from None
        if auth["jwt_secret"] and len(auth["jwt_secret"]) < MIN_JWT_SECRET_LENGTH:
            raise ConfigError(f"auth.jwt_secret: too short ({len(auth['jwt_secret'])} characters, at least "
                              f"{MIN_JWT_SECRET_LENGTH} required){self._source('auth.jwt_secret')}")
        if not auth["jwt_secret"] and environment == "production":
            file_hint = f" or write one to {auth['jwt_secret_file']}" if auth["jwt_secret_file"] else ""
            raise ConfigError(
                f"auth.jwt_secret: not set; production requires a secret of at least {MIN_JWT_SECRET_LENGTH} "
                f"characters: set DHIS2GW_JWT_SECRET{file_hint} (e.g. openssl rand -base64 48)")

    def _servers(self, default_max_concurrent: int) -> dict[str, ServerEntry]:
        raw = self.document.get("servers")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ConfigError(f"servers: must be a mapping of server name to settings in {self._where()}")
        servers: dict[str, ServerEntry] = {}
        for name, body in raw.items():
            name = str(name)
            if not SERVER_NAME.match(name):
                raise ConfigError(f"servers.{name}: a server name may contain only a-z, 0-9, '_' and '-'")
            if name == "main":
                raise ConfigError("servers.main: the name 'main' is reserved for the DHIS2 of the api: section")
            body = {} if body is None else body
            if not isinstance(body, dict):
                raise ConfigError(f"servers.{name}: must be a mapping of keys in {self._where()}")
            for field in body:
                if str(field) not in SERVER_ENTRY_KEYS:
                    raise _unknown(f"servers.{name}.{field}", str(field), sorted(SERVER_ENTRY_KEYS), self._where())
            entry: dict[str, Any] = {"name": name, "base_url": "", "auth_method": "", "user": "", "password": "",
                                     "pat": "", "max_concurrent": default_max_concurrent, "enabled": True,
                                     "instance_name": name}
            env_prefix = f"DHIS2GW_SERVERS_{name.upper().replace('-', '_')}_"
            for field, (parser, secret) in SERVER_ENTRY_KEYS.items():
                env_name = env_prefix + field.upper()
                if self.environ.get(env_name, "") != "":
                    source, value = env_name, self.environ[env_name]
                elif body.get(field) is not None:
                    source, value = self._where(), body[field]
                else:
                    continue
                try:
                    entry[field] = parser(value)
                except InvalidValue as e:
                    shown = "the value" if secret else _truncated(redact_url(value) if isinstance(value, str)
                                                                  else value)
                    raise ConfigError(f"servers.{name}.{field}: {shown} {e} (from {source})") from None
            if not entry["base_url"]:
                raise ConfigError(f"servers.{name}.base_url: required")
            entry["auth_method"] = _resolve_auth(
                f"servers.{name}.", entry["auth_method"], entry["user"], entry["password"], entry["pat"],
                ("user", "password", "pat"), required=entry["enabled"])
            servers[name] = ServerEntry(**entry)
        return servers


def _resolve_auth(prefix: str, method: str, user: str, password: str, pat: str,
                  names: tuple[str, str, str], *, required: bool) -> str:
    """
    Decide basic or pat auth and check its credentials are present when the server is in use.

    An empty method means basic when a user is set, else pat when a token is set (basic by default).
    """
    if not method:
        method = "basic" if user or not pat else "pat"
    if required and method == "basic":
        for name, value in zip(names[:2], (user, password)):
            if not value:
                raise ConfigError(f"{prefix}{name}: required for basic authentication to DHIS2")
    if required and method == "pat" and not pat:
        raise ConfigError(f"{prefix}{names[2]}: required for personal-access-token authentication to DHIS2")
    return method


def _truncated(raw: Any) -> str:
    shown = repr(raw)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _shown(key: Key, raw: Any) -> str:
    """How a rejected value appears in an error: never a secret, URIs without their password."""
    if key.secret:
        return "the value"
    if key.url and isinstance(raw, str):
        return _truncated(redact_url(raw))
    return _truncated(raw)
