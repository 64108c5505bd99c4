"""URL text of the configuration: checked splitting, redis addresses, ``file://`` directories and
the redaction of passwords inside URIs and DSNs (what every ``repr`` and error message goes through).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from dhis2gw.config.errors import InvalidValue


@dataclass(frozen=True)
class RedisTarget:
    """The parts of a redis_address; ``db`` is None when the address does not name one."""

    host: str
    port: int
    db: int | None
    password: str | None


def parse_redis_address(value: str) -> RedisTarget:
    """Split a redis address into host, port, db and password (raises InvalidValue)."""
    if "://" not in value:
        value = "redis://" + value
    parts = split_url(value)
    if parts.scheme != "redis":
        raise InvalidValue("is not host:port, redis://host:port/db or 'embedded'")
    port = 6379 if parts.port is None else parts.port
    if not parts.hostname or not 1 <= port <= 65535:
        raise InvalidValue("is not host:port, redis://host:port/db or 'embedded'")
    db_text = parts.path.strip("/")
    if db_text and not db_text.isdigit():
        raise InvalidValue("has a database number that is not an integer")
    password = unquote(parts.password) if parts.password else None
    return RedisTarget(parts.hostname, port, int(db_text) if db_text else None, password)


def file_url_to_path(value: str) -> str:
    """
    ``file:///abs/dir`` → ``/abs/dir``; ``file://rel/dir`` → ``rel/dir`` (golang-migrate's relative form).
    """
    if not value.startswith("file://"):
        return value
    parts = urlsplit(value)
    host = "" if parts.netloc in ("", "localhost") else parts.netloc
    path = unquote(parts.path)
    return f"{host}{path}" if host else path


def split_url(value: str) -> SplitResult:
    """`urlsplit`, raising InvalidValue for malformed URLs (bad brackets, non-numeric port)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - urlsplit defers port validation to this access
    except ValueError:
        raise InvalidValue("is not a valid URL") from None
    return parts


_PASSWORD_PARAM = re.compile(r"(?i)((?:^|[?&\s;])(?:password|passwd|pass|pwd|sslpassword|secret)\s*=\s*)"
                             r"('(?:[^'\\]|\\.)*'?|[^&\s;]*)")


def redact_url(value: str) -> str:
    """Replace the password of a URL with ``***`` (for database.uri, redis_address and DHIS2 URLs),
    including ``?password=`` parameters and ``password=`` in key/value DSNs (issue 16, F13)."""
    value = _PASSWORD_PARAM.sub(lambda m: m.group(1) + "***", value)
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:  # malformed: hide everything before the last "@" of the authority
        scheme, _, rest = value.partition("://")
        authority, slash, tail = rest.partition("/")
        return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{tail}" if "@" in authority else value
    if parts.password is None:
        return value
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(unquote(user), safe='')}:***@{host}"))
