"""DHIS2 identifiers: 11-character UIDs and personal access tokens."""
from __future__ import annotations

import random
import re
import string
import zlib

LETTERS = string.ascii_letters
ALNUM = string.digits + string.ascii_letters
UID_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9]{10}$")


def is_uid(value: object) -> bool:
    """True if *value* is a syntactically valid DHIS2 UID (``CodeGenerator``)."""
    return isinstance(value, str) and bool(UID_RE.match(value))


def new_uid(rng: random.Random) -> str:
    """Generate a UID with *rng* (injected so tests are reproducible)."""
    return rng.choice(LETTERS) + "".join(rng.choice(ALNUM) for _ in range(10))


def make_pat(rng: random.Random, v2: bool = False) -> str:
    """Generate a personal access token with a valid checksum.

    V1 (2.37+): ``d2pat_`` + 32 chars + 10-digit zero-padded CRC32 of the first part.
    V2 (2.41+): ``d2p_`` + 44 chars + 10-digit CRC32 (the simulator uses decimal for
    both; real V2 tokens use base62 — clients treat tokens as opaque).
    """
    prefix, length = ("d2p_", 44) if v2 else ("d2pat_", 32)
    body = prefix + "".join(rng.choice(ALNUM) for _ in range(length))
    return body + f"{zlib.crc32(body.encode()):010d}"


def pat_checksum_ok(token: str) -> bool:
    """Check a token made by :func:`make_pat`."""
    body, checksum = token[:-10], token[-10:]
    return checksum.isdigit() and f"{zlib.crc32(body.encode()):010d}" == checksum


def pat_well_formed(token: str) -> bool:
    """True if *token* has a known prefix and a plausible length."""
    if token.startswith("d2pat_"):
        return len(token) == 6 + 32 + 10
    if token.startswith("d2p_"):
        return len(token) == 4 + 44 + 10
    return False
