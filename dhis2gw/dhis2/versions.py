"""DHIS2 server versions as comparable tuples.

``/api/system/info`` reports ``version`` as ``major.minor[.patch[.hotfix]]``
with optional suffixes (``2.42-SNAPSHOT``, ``2.41.0-rc1``, ``2.40.3.1``).
"""

from __future__ import annotations

import re

Version = tuple[int, int, int]

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> Version | None:
    """``"2.40.3.1"`` -> ``(2, 40, 3)``; ``"2.42-SNAPSHOT"`` -> ``(2, 42, 0)``; junk -> None."""
    if not text:
        return None
    match = _VERSION.match(str(text))
    if match is None:
        return None
    major, minor, patch = match.groups()
    return (int(major), int(minor), int(patch or 0))


def wraps_data_value_set_summary(version: Version | None) -> bool:
    """True when ``POST /api/dataValueSets`` answers with a WebMessage (2.38+).

    Informational only: the interpreters tolerate both envelopes regardless.
    """
    return version is None or version >= (2, 38, 0)


def supports_api_tokens(version: Version | None) -> bool:
    """Personal access tokens exist from 2.37 on."""
    return version is None or version >= (2, 37, 0)
