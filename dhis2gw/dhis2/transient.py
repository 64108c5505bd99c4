"""Known transient DHIS2 answers: bodies that look permanent but succeed when sent again.

DHIS2 sometimes answers a request it could not process because of its own state (a batch
flush, a database error) with a status that otherwise means "your payload is wrong" (409).
Rejecting such a submission loses data an identical retry would have stored. Each row of
`KNOWN_TRANSIENT` names a (version range, HTTP status, body pattern) and the outcome it
stands for; the interpretation (`dhis2gw.dhis2.interpret`, `dhis2gw.dhis2.tracker_reports`)
consults the table before it calls a 409 a rejection. The README lists the same rows.

A row matches on the text DHIS2 put in the body (``message``, ``devMessage`` and the import
summary's ``description``). When the server version is unknown the range is not applied:
the patterns are specific enough not to occur on other versions.

The deterministic ``dryRun`` 500 of 2.43.2/2.44 (``DataEntryGroup.values() … "valid" is
null``) is deliberately *not* here: it fails the same payload every time, so it is an
ordinary DHIS2 500 (a retry that the outage rules turn into a poison verdict), not an
answer worth retrying for its own sake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dhis2gw.dhis2.versions import Version


@dataclass(frozen=True)
class TransientAnswer:
    """One known transient answer and what the gateway makes of it.

    ``since``/``until`` bound the versions it was observed on (``until`` inclusive, None =
    open); ``reason`` becomes `Outcome.reason` of the RETRY outcome; ``source`` says where
    the observation comes from.
    """

    name: str
    statuses: frozenset[int]
    pattern: re.Pattern[str]
    reason: str
    since: Version | None
    until: Version | None
    description: str
    source: str

    def applies(self, status: int, text: str, version: Version | None = None) -> bool:
        """True when an answer with ``status`` and body ``text`` from ``version`` is this one."""
        if status not in self.statuses or not text or not self.pattern.search(text):
            return False
        if version is None:
            return True
        if self.since is not None and version < self.since:
            return False
        return self.until is None or version <= self.until


#: The table (README "Known transient answers" lists it row by row).
KNOWN_TRANSIENT: tuple[TransientAnswer, ...] = (
    TransientAnswer(
        name="batch_handler_flush",
        statuses=frozenset({409}),
        pattern=re.compile(r"failed to flush batchhandler", re.IGNORECASE),
        reason="batch_handler_flush",
        since=(2, 43, 0),
        until=None,
        description="409 ImportSummary ERROR 'The import process failed: Failed to flush BatchHandler' with "
                    "zero counts, on the first completeness registration for a never-used period; the "
                    "identical retry answers 200",
        source="dhis2w DHIS2_ISSUES.md #81 (2.43.1, 2.43.2, 2.44)",
    ),
    TransientAnswer(
        name="sql_state",
        statuses=frozenset({409}),
        pattern=re.compile(r"sql ?state|(?:^|[\s|:])(?-i:ERROR): |psqlexception|bad sql grammar", re.IGNORECASE),
        reason="sql_error",
        since=None,
        until=None,
        description="409 WebMessage whose message or devMessage carries SQL-state text ('ERROR: …', "
                    "'(SqlState: 42601)'): a server-side database fault, not a verdict on the payload",
        source="dhis2w DHIS2_ISSUES.md #115 #116 #97 #36 (2.41.10, 2.42.6, 2.43.1)",
    ),
)


def known_transient(status: int, text: str | None, version: Version | None = None) -> TransientAnswer | None:
    """The row of `KNOWN_TRANSIENT` this answer matches, or None."""
    if not text:
        return None
    return next((row for row in KNOWN_TRANSIENT if row.applies(status, text, version)), None)
