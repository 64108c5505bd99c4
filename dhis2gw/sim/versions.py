"""DHIS2 version numbers and the behaviour switches that depend on them.

Every version-dependent decision of the simulator goes through :class:`Version`
so the rules from ``reference/dhis2-api.md`` §7 live in one place.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"^2\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-.*)?$")


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

    # -- aggregate ---------------------------------------------------------
    @property
    def dvs_webmessage(self) -> bool:
        """dataValueSets wraps the summary in a WebMessage (and 409s) from 2.38."""
        return self.minor >= 38

    @property
    def coded_conflicts(self) -> bool:
        """Conflicts carry errorCode/objects/property/indexes from 2.37."""
        return self.minor >= 37

    @property
    def rejected_indexes(self) -> bool:
        """ImportSummary.rejectedIndexes exists from 2.39."""
        return self.minor >= 39

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

    @property
    def new_value_wording(self) -> bool:
        """E7619/E7633/E7641 wording changed in 2.40."""
        return self.minor >= 40

    @property
    def strict_locking_flags(self) -> bool:
        """importOptions echo strictDataSetApproval/Locking/InputPeriods from 2.38."""
        return self.minor >= 38

    @property
    def data_entry_pipeline(self) -> bool:
        """2.43 rewrote the aggregate import: E80xx/E81xx codes, per-data-set groups, new counting."""
        return self.minor >= 43

    @property
    def partial_success_200(self) -> bool:
        """A mixed import (some values stored, some refused) answers 200 WARNING from 2.43.1 (409 before)."""
        return self.at_least(43, 1)

    @property
    def superuser_skips_future_periods(self) -> bool:
        """From 2.43.1 users with ALL are not held to ``openFuturePeriods`` (dhis2w #139)."""
        return self.at_least(43, 1)

    @property
    def dry_run_npe(self) -> bool:
        """2.43.2+: ``dryRun=true`` on a TRUE_ONLY/LONG_TEXT value is a deterministic 500 NPE (dhis2w #129)."""
        return self.at_least(43, 2)

    @property
    def backticked_args(self) -> bool:
        """2.44 wraps conflict arguments in backticks (`` `[A, B]` ``)."""
        return self.minor >= 44

    # -- jobs --------------------------------------------------------------
    @property
    def persisted_jobs(self) -> bool:
        """2.41+: job names 'DATAVALUE_IMPORT (<millis>)', jobStatus/jobParameters."""
        return self.minor >= 41

    @property
    def failed_job_feed_wiped(self) -> bool:
        """2.44 empties a failed job's ``/api/system/tasks`` feed about 1 s after its last row (dhis2w #143)."""
        return self.minor >= 44

    # -- tracker -----------------------------------------------------------
    @property
    def tracker_timings(self) -> bool:
        """timingsStats exists (reportMode=FULL) up to 2.40."""
        return self.minor <= 40

    @property
    def tracker_error_args(self) -> bool:
        """errorReports carry args from 2.41."""
        return self.minor >= 41

    @property
    def tracker_object_index(self) -> bool:
        """objectReports carry index up to 2.40."""
        return self.minor <= 40

    @property
    def tracker_bundle_status(self) -> bool:
        """bundleReport has status + stats up to 2.39."""
        return self.minor <= 39

    @property
    def tracker_invalid_uid_400(self) -> bool:
        """2.42 rejects invalid UIDs while parsing (400) instead of E1048."""
        return self.minor >= 42

    @property
    def tracker_job_response_type(self) -> bool:
        """The async tracker response lacks responseType in 2.41 only."""
        return self.minor != 41

    @property
    def nested_relationship_items(self) -> bool:
        """RelationshipItem is ``{"trackedEntity": {"trackedEntity": uid}}`` from 2.38."""
        return self.minor >= 38

    @property
    def old_tracker_messages(self) -> bool:
        """2.36-2.39 render objects as ``OrganisationUnit (uid)`` in messages."""
        return self.minor <= 39

    # -- metadata / auth ---------------------------------------------------
    @property
    def collection_type_report(self) -> bool:
        """Collection add/remove returns 200 TypeReport from 2.38 (204 before)."""
        return self.minor >= 38

    @property
    def pat(self) -> bool:
        """Personal access tokens exist from 2.37."""
        return self.minor >= 37

    @property
    def pat_v2(self) -> bool:
        """``d2p_`` tokens exist from 2.41."""
        return self.minor >= 41

    @property
    def gist_lists(self) -> bool:
        """2.44 serves list reads with plain ``fields=`` through Gist (its pager; ``nextPage`` over http)."""
        return self.minor >= 44

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
