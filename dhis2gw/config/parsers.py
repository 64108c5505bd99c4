"""
The parsers of configuration values: each turns a raw YAML or environment value into a typed one
or raises `InvalidValue` with the reason (``is not a boolean …``), which the loader turns into a
`ConfigError` naming the key. `dhis2gw.config.schema.KEYS` says which key uses which parser.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from typing import Any
from urllib.parse import urlunsplit

from dhis2gw.config.errors import InvalidValue
from dhis2gw.config.sections import EMBEDDED
from dhis2gw.config.urls import parse_redis_address, split_url

MIB = 1024 * 1024

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
