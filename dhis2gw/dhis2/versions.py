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


#: The versions the gateway and its simulator are tested against (README "Supported versions").
SUPPORTED_RANGE: tuple[Version, Version] = ((2, 36, 0), (2, 44, 99))


def data_entry_pipeline(version: Version | None) -> bool:
    """True from 2.43, whose rewritten aggregate import has the E80xx/E81xx codes.

    On 2.43+ ``importCount.imported`` is always 0 (first writes count as ``updated``), a
    batch with duplicate keys is refused (E8128), a data element in several data sets
    needs a top-level ``dataSet`` (E8002), and the counts do not add up to what was sent
    (E8030/E8032 rejections are not counted as ignored).  Unknown versions: False.
    """
    return version is not None and version >= (2, 43, 0)


def partial_success_is_200(version: Version | None) -> bool:
    """A mixed aggregate import answers ``200 WARNING`` from 2.43.1 (``409 WARNING`` 2.38-2.43.0).

    Informational: the interpretation reads the body's status whatever the HTTP code.
    """
    return version is not None and version >= (2, 43, 1)


def login_path(version: Version | None) -> str:
    """Where DHIS2 redirects an unauthenticated request (used by tests and the simulator)."""
    if version is not None and version >= (2, 43, 0):
        return "/login/"
    if version is not None and version >= (2, 41, 0):
        return "/dhis-web-login/"
    return "/dhis-web-commons/security/login.action"


def gist_plain_field_lists(version: Version | None) -> bool:
    """2.44 serves list reads with plain ``fields=`` through the Gist engine (its own pager)."""
    return version is not None and version >= (2, 44, 0)


def job_feed_wiped_on_failure(version: Version | None) -> bool:
    """2.44 empties a failed job's ``/api/system/tasks`` feed about 1 s after its last row."""
    return version is None or version >= (2, 44, 0)
