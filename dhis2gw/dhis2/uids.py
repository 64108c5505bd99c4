"""DHIS2 UIDs: 11 characters, a letter then 10 letters or digits (``CodeGenerator``).

Generated locally with `secrets` (equivalent to ``GET /api/system/id``), so the
gateway can assign tracker UIDs before the first attempt and re-send safely.
"""

from __future__ import annotations

import re
import secrets
import string

UID_LENGTH = 11
_LETTERS = string.ascii_letters
_ALPHANUMERIC = string.digits + string.ascii_letters

#: The pattern DHIS2 validates UIDs against.
UID_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9]{10}$")


def generate_uid() -> str:
    """One new random UID (52 * 62**10 possibilities, about 4.4e19), from the OS CSPRNG.

    Bytes are drawn in one call and mapped without bias (rejection sampling: a byte is used
    only when below the largest multiple of the alphabet size).
    """
    chars: list[str] = []
    while True:
        for byte in secrets.token_bytes(24):
            if not chars:
                if byte < 208:  # 4 * 52
                    chars.append(_LETTERS[byte % 52])
            elif byte < 248:  # 4 * 62
                chars.append(_ALPHANUMERIC[byte % 62])
            if len(chars) == UID_LENGTH:
                return "".join(chars)


def generate_uids(count: int) -> list[str]:
    """``count`` distinct new UIDs."""
    if count < 0:
        raise ValueError("count must not be negative")
    found: set[str] = set()
    result: list[str] = []
    while len(result) < count:
        uid = generate_uid()
        if uid not in found:
            found.add(uid)
            result.append(uid)
    return result


def is_valid_uid(value: object) -> bool:
    """True when ``value`` is a string DHIS2 accepts as a UID."""
    return isinstance(value, str) and UID_PATTERN.fullmatch(value) is not None
