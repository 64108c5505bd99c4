"""DHIS2 version numbers and the behaviour switches that depend on them.

Every version-dependent decision of the simulator goes through :class:`Version`
so the rules from ``reference/dhis2-api.md`` §7 live in one place.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

_VERSION_RE = re.compile(r"^2\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-.*)?$")


class _Switch:
    """A behaviour switch of :class:`Version`: read on a version, it is ``rule(version)``."""

    def __init__(self, rule: Callable[[Version], bool], doc: str) -> None:
        self.rule = rule
        self.__doc__ = doc

    @overload
    def __get__(self, version: None, owner: Any) -> _Switch: ...

    @overload
    def __get__(self, version: Version, owner: Any) -> bool: ...

    def __get__(self, version: Version | None, owner: Any) -> bool | _Switch:
        return self if version is None else self.rule(version)


def _since(minor: int, doc: str, patch: int = 0) -> _Switch:
    """On from ``2.minor.patch``."""
    return _Switch(lambda v: v.at_least(minor, patch), doc)


def _until(minor: int, doc: str) -> _Switch:
    """On up to ``2.minor`` (every patch of it)."""
    return _Switch(lambda v: v.minor <= minor, doc)


@dataclass(frozen=True, order=True)
class Version:
    """A DHIS2 server version ``2.<minor>.<patch>[.<hotfix>]``."""

    minor: int
    patch: int = 0
    hotfix: int = 0
    text: str = ""

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """Parse ``"2.40"``, ``"2.40.3"`` or ``"2.40.3.1"``; 2.36–2.44 only."""
        if isinstance(text, Version):
            return text
        m = _VERSION_RE.match(str(text).strip())
        if not m:
            raise ValueError(f"not a DHIS2 version: {text!r}")
        minor = int(m.group(1))
        if not 36 <= minor <= 44:
            raise ValueError(f"the simulator covers 2.36-2.44, not {text!r}")
        return cls(minor, int(m.group(2) or 0), int(m.group(3) or 0), str(text).strip())

    def __str__(self) -> str:
        return self.text or f"2.{self.minor}.{self.patch}"

    @property
    def display(self) -> str:
        """What ``/api/system/info`` reports as ``version``."""
        if self.text and self.text.count(".") >= 2:
            return self.text
        return f"2.{self.minor}.{self.patch}"

    def at_least(self, minor: int, patch: int = 0) -> bool:
        """True if this version is ``2.minor.patch`` or newer."""
        return (self.minor, self.patch) >= (minor, patch)

    # The switches of one version each, the version that turns them on (or the last one with them).
    # -- aggregate ---------------------------------------------------------
    dvs_webmessage = _since(38, "dataValueSets wraps the summary in a WebMessage (and 409s) from 2.38.")
    coded_conflicts = _since(37, "Conflicts carry errorCode/objects/property/indexes from 2.37.")
    rejected_indexes = _since(39, "ImportSummary.rejectedIndexes exists from 2.39.")
    new_value_wording = _since(40, "E7619/E7633/E7641 wording changed in 2.40.")
    strict_locking_flags = _since(38, "importOptions echo strictDataSetApproval/Locking/InputPeriods from 2.38.")
    data_entry_pipeline = _since(
        43, "2.43 rewrote the aggregate import: E80xx/E81xx codes, per-data-set groups, new counting.")
    partial_success_200 = _since(
        43, "A mixed import (some values stored, some refused) answers 200 WARNING from 2.43.1 (409 before).", 1)
    superuser_skips_future_periods = _since(
        43, "From 2.43.1 users with ALL are not held to ``openFuturePeriods`` (dhis2w #139).", 1)
    dry_run_npe = _since(
        43, "2.43.2+: ``dryRun=true`` on a TRUE_ONLY/LONG_TEXT value is a deterministic 500 NPE (dhis2w #129).", 2)
    backticked_args = _since(44, "2.44 wraps conflict arguments in backticks (`` `[A, B]` ``).")

    @property
    def unchanged_is_ignored(self) -> bool:
        """Unchanged values count as ignored from 2.38.6 / 2.40.3 / 2.41.0 (DHIS2-15254).

        2.39.x is treated as not fixed: the reference names no 2.39 patch level.
        """
        if self.minor == 38:
            return self.patch >= 6
        if self.minor == 40:
            return self.patch >= 3
        return self.minor >= 41

    # -- jobs --------------------------------------------------------------
    persisted_jobs = _since(41, "2.41+: job names 'DATAVALUE_IMPORT (<millis>)', jobStatus/jobParameters.")
    failed_job_feed_wiped = _since(
        44, "2.44 empties a failed job's ``/api/system/tasks`` feed about 1 s after its last row (dhis2w #143).")

    # -- tracker -----------------------------------------------------------
    tracker_timings = _until(40, "timingsStats exists (reportMode=FULL) up to 2.40.")
    tracker_error_args = _since(41, "errorReports carry args from 2.41.")
    tracker_object_index = _until(40, "objectReports carry index up to 2.40.")
    tracker_bundle_status = _until(39, "bundleReport has status + stats up to 2.39.")
    tracker_invalid_uid_400 = _since(42, "2.42 rejects invalid UIDs while parsing (400) instead of E1048.")
    tracker_job_response_type = _Switch(lambda v: v.minor != 41,
                                        "The async tracker response lacks responseType in 2.41 only.")
    nested_relationship_items = _since(
        38, 'RelationshipItem is ``{"trackedEntity": {"trackedEntity": uid}}`` from 2.38.')
    old_tracker_messages = _until(39, "2.36-2.39 render objects as ``OrganisationUnit (uid)`` in messages.")

    # -- metadata / auth ---------------------------------------------------
    collection_type_report = _since(38, "Collection add/remove returns 200 TypeReport from 2.38 (204 before).")
    pat = _since(37, "Personal access tokens exist from 2.37.")
    pat_v2 = _since(41, "``d2p_`` tokens exist from 2.41.")
    gist_lists = _since(
        44, "2.44 serves list reads with plain ``fields=`` through Gist (its pager; ``nextPage`` over http).")

    @property
    def login_path(self) -> str:
        """Where unauthenticated browsers are redirected."""
        if self.minor >= 43:
            return "/login/"
        if self.minor >= 41:
            return "/dhis-web-login/"
        return "/dhis-web-commons/security/login.action"

    @property
    def access_denied_message(self) -> str:
        """Spring's 403 message (Spring Security 6 in 2.42)."""
        return "Access Denied" if self.minor >= 42 else "Access is denied"
