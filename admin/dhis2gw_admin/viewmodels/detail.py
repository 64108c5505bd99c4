"""DetailVM: one submission — payloads, DHIS2 response, conflicts, error reports, attempts, events.

Conflicts and error reports are flattened into readable lines ("orgUnit ty5AJ6ZU5f7: Org unit
not assigned to data set (E7603)") from any DHIS2 version's shapes: ``importSummary.conflicts``,
tracker ``validationReport.errorReports``, metadata ``typeReports[].objectReports[].errorReports``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

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


def error_report_lines(response: Any, errors: list[dict[str, Any]]) -> list[str]:
    """DHIS2 error reports in the response, then the gateway's error events."""
    out: list[str] = []
    _walk_error_reports(response, out)
    if isinstance(response, dict) and not out and response.get("status") in ("ERROR", "WARNING"):
        description = response.get("description") or response.get("message")
        if description:
            out.append(str(description))
    for e in errors:
        status = f"HTTP {e['http_status']}: " if e.get("http_status") else ""
        out.append(f"{short_time(e.get('at'))} {e.get('event')}: {status}{e.get('detail') or ''}".strip())
    return out


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

    def __init__(self, api: GatewayApi, clipboard: Optional[Callable[[str], None]] = None) -> None:
        self.api = api
        self.clipboard = clipboard

    async def _load(self, submission_id: int) -> bool:
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
            ("Attempts", str(s.get("attempts", 0))), ("HTTP status", str(s.get("http_status") or "—")),
            ("Import count", ", ".join(f"{k} {v}" for k, v in count.items()) if count else "—"),
            ("Error", s.get("error") or "—"),
        ]
        self.payload_text = pretty_json(s.get("payload"))
        self.dhis2_payload_text = pretty_json(s.get("dhis2_payload"))
        self.response_text = pretty_json(s.get("response"))
        self.conflicts = [conflict_line(c) for c in (s.get("conflicts") or [])]
        self.error_reports = error_report_lines(s.get("response"), s.get("errors") or [])
        self.attempts = [
            f"#{a['attempt']}: {a.get('outcome') or 'in progress'}"
            f"{' — HTTP ' + str(a['http_status']) if a.get('http_status') else ''}"
            f"{' — ' + str(a['duration_ms']) + ' ms' if a.get('duration_ms') is not None else ''}"
            f"{' — ' + a['detail'] if a.get('detail') else ''} (started {short_time(a.get('started_at')) or '?'})"
            for a in s.get("attempts_detail") or []]
        self.events = [
            f"{short_time(e.get('at'))}  {e.get('event')}"
            f"{' → ' + e['status'] if e.get('status') and e.get('status') != e.get('event') else ''}"
            f"{' by ' + e['actor'] if e.get('actor') else ''}"
            f"{' — ' + e['detail'] if e.get('detail') else ''}"
            for e in s.get("events") or []]
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

    def copy(self, section: str) -> str:
        """Put one section on the clipboard; returns the text copied."""
        text = self.section_text(section)
        if self.clipboard is not None:
            self.clipboard(text)
        self.message = f"Copied {section.replace('_', ' ')} ({len(text)} characters)"
        return text
