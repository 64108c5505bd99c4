"""DetailVM: one submission — payloads, DHIS2 response, conflicts, error reports, attempts, events.

Conflicts and error reports are flattened into readable lines ("orgUnit ty5AJ6ZU5f7: Org unit
not assigned to data set (E7603)") from any DHIS2 version's shapes: ``importSummary.conflicts``,
tracker ``validationReport.errorReports``, metadata ``typeReports[].objectReports[].errorReports``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.observable import Field
from dhis2gw_admin.viewmodels.base import ViewModel, pretty_json, short_time
from dhis2gw_admin.viewmodels.logs import REQUEUEABLE

SECTIONS = ("payload", "dhis2_payload", "response", "conflicts", "error_reports", "attempts", "events")


def conflict_line(c: Any) -> str:
    """One DHIS2 ImportConflict as text."""
    if not isinstance(c, dict):
        return str(c)
    message = c.get("value") or c.get("message") or ""
    subject = c.get("object") or ""
    objects = c.get("objects") if isinstance(c.get("objects"), dict) else {}
    if objects:
        subject = ", ".join(f"{k} {v}" for k, v in objects.items())
    code = f" ({c['errorCode']})" if c.get("errorCode") else ""
    where = f" [values {', '.join(str(i) for i in c['indexes'])}]" if c.get("indexes") else ""
    return f"{subject}: {message}{code}{where}" if subject else f"{message}{code}{where}"


def _walk_error_reports(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "errorReports" and isinstance(value, list):
                for r in value:
                    if isinstance(r, dict):
                        what = " ".join(str(r[k]) for k in ("trackerType", "uid", "mainKlass") if r.get(k))
                        code = r.get("errorCode") or r.get("code") or ""
                        text = r.get("message") or ""
                        out.append(f"{what + ': ' if what else ''}{text}{f' ({code})' if code else ''}")
                    else:
                        out.append(str(r))
            else:
                _walk_error_reports(value, out)
    elif isinstance(node, list):
        for item in node:
            _walk_error_reports(item, out)


def error_report_lines(response: Any, already_said: str = "") -> list[str]:
    """What DHIS2 itself reported (error reports, or the description of an ERROR/WARNING answer).

    The gateway's own account of each attempt is in the attempts list, not here: every message is
    shown once. A line the summary's error already says (``already_said``) is left out too."""
    out: list[str] = []
    _walk_error_reports(response, out)
    if isinstance(response, dict) and not out and response.get("status") in ("ERROR", "WARNING"):
        description = response.get("description") or response.get("message")
        if description:
            out.append(str(description))
    unique = list(dict.fromkeys(line for line in out if line))
    return [line for line in unique if not already_said or line not in already_said]


def with_status(http_status: Any, detail: str | None) -> str:
    """``HTTP 500 — detail`` without saying "HTTP 500" twice when the detail starts with it."""
    detail = (detail or "").strip()
    if not http_status:
        return detail
    prefix = f"HTTP {http_status}"
    if detail.startswith(prefix):
        return detail
    return f"{prefix} — {detail}" if detail else prefix


def attempt_line(a: dict[str, Any]) -> str:
    """``#2: failed — HTTP 500 — 5 ms — reason (started …)``."""
    detail = (a.get("detail") or "").strip()
    status = a.get("http_status")
    if status and detail.startswith(f"HTTP {status}"):
        detail = detail[len(f"HTTP {status}"):].lstrip(" :—-")
    parts = [f"#{a['attempt']}: {a.get('outcome') or 'in progress'}"]
    if status:
        parts.append(f"HTTP {status}")
    if a.get("duration_ms") is not None:
        parts.append(f"{a['duration_ms']} ms")
    if detail:
        parts.append(detail)
    return " — ".join(parts) + f" (started {short_time(a.get('started_at')) or '?'})"


def event_line(e: dict[str, Any], attempt_details: dict[int, str]) -> str:
    """One event of the timeline; an attempt's outcome names the attempt instead of repeating its
    detail (the attempts list says it)."""
    text = f"{short_time(e.get('at'))}  {e.get('event')}"
    if e.get("status") and e.get("status") != e.get("event"):
        text += f" (now {e['status']})"
    if e.get("actor"):
        text += f" by {e['actor']}"
    detail = (e.get("detail") or "").strip()
    attempt = e.get("attempt")
    if attempt is not None and detail and attempt_details.get(attempt) == detail:
        return text + f" (attempt #{attempt})"
    if attempt is not None and e.get("event") == "processing":
        return text + f" (attempt #{attempt})"
    return text + (f" — {detail}" if detail else "")


def annotate_uids(text: str, names: dict[str, dict[str, Any]]) -> str:
    """Put the code (and name) the gateway knows beside each UID of a JSON text, line by line:
    ``"dataElement": "Re46C6Apebu",   // OPD (OPD visits)`` (the app's font has no arrows)."""
    if not names:
        return text
    out = []
    for line in text.splitlines():
        notes = []
        for uid, known in names.items():
            if f'"{uid}"' in line:
                code, name = known.get("code") or "", known.get("name") or ""
                notes.append(" ".join(x for x in (code, f"({name})" if name and name != code else "") if x) or uid)
        out.append(f"{line}   // {'; '.join(notes)}" if notes else line)
    return "\n".join(out)


class DetailVM(ViewModel):
    """One submission, its readable sections, and the actions of the detail screen."""

    submission = Field({})
    submission_id = Field(None)
    status = Field("")
    summary = Field([])           # [(label, value)]
    payload_text = Field("")
    dhis2_payload_text = Field("")
    response_text = Field("")
    conflicts = Field([])         # readable lines
    error_reports = Field([])
    attempts = Field([])
    events = Field([])
    deleted = Field(False)
    names = Field({})             # UID → {"code", "name", "type"} (what the gateway knows)

    def __init__(self, api: GatewayApi, clipboard: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.clipboard = clipboard

    async def _load(self, submission_id: int) -> bool:
        if submission_id != self.submission_id:
            # A banner ("queued again") belongs to the submission it was about.
            self.message = ""
            self.submission = {}
        s = await self.api.get_log(submission_id)
        self.submission_id = s["id"]
        self.status = s.get("status", "")
        self.deleted = False
        count = s.get("import_count") or {}
        self.summary = [
            ("Submission", f"{s['id']} ({s.get('uid', '')})"), ("Status", s.get("status", "")),
            ("Kind", s.get("kind", "")), ("Destination", s.get("destination", "")),
            ("Endpoint", s.get("endpoint") or ""), ("Created", short_time(s.get("created_at"))),
            ("Last attempt", short_time(s.get("last_attempt_at")) or "—"),
            ("Finished", short_time(s.get("finished_at")) or "—"),
            ("Attempts", str(s.get("attempts", 0))),
            ("Import count", ", ".join(f"{k} {v}" for k, v in count.items()) if count else "—"),
            ("Error", with_status(s.get("http_status"), s.get("reason") or s.get("error")) or "—"),
        ]
        unit = s.get("org_unit")
        if unit:
            self.summary.append(("Org unit", f"{s.get('org_unit_name') or unit}"
                                             f" ({s.get('org_unit_code') or 'no code'}), UID {unit}"))
            self.summary.append(("Period / data set", f"{s.get('period') or '—'} / {s.get('data_set') or '—'}"))
        self.names = dict(s.get("names") or {})
        self.payload_text = pretty_json(s.get("payload"))
        self.dhis2_payload_text = pretty_json(s.get("dhis2_payload"))
        self.response_text = pretty_json(s.get("response"))
        self.conflicts = [conflict_line(c) for c in (s.get("conflicts") or [])]
        said = s.get("reason") or s.get("error") or ""
        conflicts_said = "\n".join(self.conflicts)
        self.error_reports = [line for line in error_report_lines(s.get("response"), said)
                              if line not in conflicts_said]
        attempts = s.get("attempts_detail") or []
        self.attempts = [attempt_line(a) for a in attempts]
        details = {a["attempt"]: (a.get("detail") or "").strip() for a in attempts if a.get("attempt") is not None}
        self.events = [event_line(e, details) for e in s.get("events") or []]
        self.submission = s  # last: screens redraw on this one, with every section ready
        return True

    async def load(self, submission_id: int) -> bool:
        """Fetch one submission; True on success."""
        return bool(await self.guard(self._load(submission_id)))

    async def refresh(self) -> bool:
        return await self.load(self.submission_id) if self.submission_id is not None else False

    @property
    def can_requeue(self) -> bool:
        return self.status in REQUEUEABLE

    async def requeue(self, force: bool = False) -> bool:
        """Requeue this submission and reload it (its status becomes ``queued``)."""
        if self.submission_id is None:
            return False
        answer = await self.guard(self.api.requeue_one(self.submission_id, force))
        if answer is None:
            return False
        self.status = answer.get("status", "queued")
        self.message = answer.get("message") or "Queued again"
        await self.refresh()
        return True

    async def delete(self) -> bool:
        if self.submission_id is None:
            return False
        if await self.guard(self.api.delete_log(self.submission_id)) is None:
            return False
        self.message = f"Submission {self.submission_id} deleted"
        self.deleted = True
        return True

    def section_text(self, section: str) -> str:
        """The text of one section, as copied."""
        values = {"payload": self.payload_text, "dhis2_payload": self.dhis2_payload_text,
                  "response": self.response_text, "conflicts": "\n".join(self.conflicts),
                  "error_reports": "\n".join(self.error_reports), "attempts": "\n".join(self.attempts),
                  "events": "\n".join(self.events)}
        if section not in values:
            raise KeyError(section)
        return values[section]

    def display_text(self, section: str) -> str:
        """The text of one section as shown: the DHIS2 payload with codes beside its UIDs."""
        text = self.section_text(section)
        return annotate_uids(text, self.names) if section == "dhis2_payload" else text

    def copy(self, section: str) -> str:
        """Put one section on the clipboard; returns the text copied."""
        text = self.section_text(section)
        if self.clipboard is not None:
            self.clipboard(text)
        self.message = f"Copied {section.replace('_', ' ')} ({len(text)} characters)"
        return text
