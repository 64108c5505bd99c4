"""Pure conversions of the original Go dhis2gw's rows into this gateway's (no I/O).

Each ``*_row`` function returns ``(row, None)`` or ``(None, reason)`` when the row is skipped.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import bcrypt

from dhis2gw.auth.passwords import is_bcrypt
from dhis2gw.mapping.rows import COLUMNS, UID_RE

SEEDED_ADMIN = "admin"
SEEDED_PASSWORD = b"@dm1n"
LEGACY_KEY_PREFIX = "legacy-"  # submissions.idempotency_key of an imported submission_log row
IMPORT_ACTOR = "import-legacy"

# submission_log.status → (this gateway's status, what it means). The original wrote 'queued' at
# ingest, 'failed' on any transport/HTTP/validation error, and otherwise DHIS2's top-level status.
STATUS_MAP: dict[str, str] = {
    "SUCCESS": "delivered", "OK": "delivered",
    "WARNING": "partial",
    "ERROR": "rejected",
    "failed": "failed",
    # Never delivered by the original. Imported as failed (so nothing sends it by surprise) and
    # requeued by --requeue.
    "queued": "failed",
}
REQUEUE_STATUSES = ("queued", "failed")


def map_status(status: str | None) -> tuple[str, str | None]:
    """This gateway's status for an original status, and an error text when the row says nothing better."""
    raw = status if status is not None else ""
    mapped = STATUS_MAP.get(raw)
    if raw == "queued":
        return "failed", "was still queued in the Go dhis2gw when it was imported; never delivered"
    if mapped is not None:
        return mapped, None
    if raw == "":
        return "failed", "the Go dhis2gw recorded no DHIS2 status (an unreadable answer, e.g. a login page)"
    return "failed", f"unknown status {raw[:40]!r} in the Go dhis2gw"


def user_row(legacy: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """``(row, skip reason, warning)`` for one original ``users`` row."""
    username = (legacy.get("username") or "").strip()
    if not username or len(username) > 150:
        return None, "no usable username", None
    password = legacy.get("password") or ""
    warning = None
    active = bool(legacy["is_active"]) if legacy.get("is_active") is not None else True
    if not is_bcrypt(password):
        return None, f"user {username!r}: the password is not a bcrypt hash", None
    if username.lower() == SEEDED_ADMIN:
        default = _checkpw(SEEDED_PASSWORD, password)
        warning = ("user 'admin': the Go dhis2gw's seeded account" + (" still has its published password '@dm1n'"
                   if default else "") + "; imported deactivated (reactivate it only after setting a new password)")
        active = False
    names = " ".join(p.strip() for p in (legacy.get("firstname") or "", legacy.get("lastname") or "") if p.strip())
    uid = (legacy.get("uid") or "").strip()
    return {
        "uid": uid if UID_RE.match(uid) else None,
        "username": username,
        "email": (legacy.get("email") or "").strip() or None,
        "full_name": names or None,
        "telephone": (legacy.get("telephone") or "").strip() or None,
        "role": "admin" if legacy.get("is_admin_user") else "submitter",
        "password_hash": password,
        "is_active": active,
        "created_at": legacy.get("created"),
        "last_login_at": legacy.get("last_login"),
    }, None, warning


def _checkpw(password: bytes, encoded: str) -> bool:
    try:
        return bool(bcrypt.checkpw(password, encoded.encode("ascii")))
    except ValueError:
        return False


def mapping_row(legacy: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """One original ``dhis2_mappings`` row in this gateway's columns (+ ``dimension_type``)."""
    def text(column: str, default: str = "") -> str:
        value = legacy.get(column)
        return default if value is None else str(value).strip()

    row = {c: text(c) for c in COLUMNS if c != "destination_orgunit"}
    row["destination_orgunit"] = text("dest_orgunit")
    # Before its migration 000005 the original had no scope: every row applied, as 'default' does.
    row["instance_name"] = text("instance_name", "default")
    row["source_name"] = text("source_name", "default")
    row["what"] = (row["what"] or "de").lower()
    row["dimension_type"] = text("dimension_type", "none") or "none"
    if row["what"] not in ("de", "ou", "co"):
        return None, f"mapping #{legacy['id']} ({row['code']!r}): unknown what {row['what']!r}"
    if row["what"] == "ou" and not row["code"]:
        row["code"] = row["source_orgunit"]
    if not row["code"]:
        return None, f"mapping #{legacy['id']}: no code"
    if row["what"] == "de" and not row["dataelement"]:
        return None, f"mapping #{legacy['id']} ({row['code']!r}): no dataelement"
    row["uid"] = text("uid")
    return row, None


def _json(value: Any) -> Any:
    """A TEXT/JSONB column as JSON: parsed when it is JSON text, kept as a string otherwise."""
    if value is None or isinstance(value, (dict, list)):
        return value
    text = str(value)
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def submission_row(legacy: dict[str, Any]) -> dict[str, Any]:
    """One ``submission_log`` row as a ``submissions`` row (imported into a final state)."""
    status, note = map_status(legacy.get("status"))
    payload = _json(legacy.get("payload"))
    dhis2_payload = _json(legacy.get("dhis2_payload"))
    response = _json(legacy.get("response"))
    import_count = conflicts = None
    if isinstance(response, dict):
        counts = response.get("importCount") or (response.get("response") or {}).get("importCount")
        import_count = counts if isinstance(counts, dict) else None
        found = response.get("conflicts") or (response.get("response") or {}).get("conflicts")
        conflicts = found if isinstance(found, list) and found else None
    values = (dhis2_payload or {}).get("dataValues") if isinstance(dhis2_payload, dict) else None
    if values is None and isinstance(payload, dict):
        values = payload.get("dataValues")
    errors = (legacy.get("errors") or "").strip() or None
    submitted: datetime = legacy["submitted_at"]
    last_attempt: datetime | None = legacy.get("last_attempt_at")
    attempted = legacy.get("status") not in (None, "queued")
    return {
        "idempotency_key": f"{LEGACY_KEY_PREFIX}{legacy['id']}",
        "payload": payload if payload is not None else {},
        "dhis2_payload": dhis2_payload if isinstance(dhis2_payload, (dict, list)) else None,
        "status": status,
        "attempts": 1 if attempted else 0,
        "created_at": submitted,
        "updated_at": last_attempt or submitted,
        "last_attempt_at": last_attempt,
        "finished_at": (last_attempt or submitted),
        "response": response,
        "import_count": import_count,
        "conflicts": conflicts,
        "error": errors or note,
        "value_count": len(values) if isinstance(values, (list, dict)) else 0,
        "detail": (f"from the Go dhis2gw's submission_log #{legacy['id']} (status {legacy.get('status')!r}"
                   + (f", task {legacy['task_id']}" if legacy.get("task_id") else "") + ")"),
        "legacy_status": legacy.get("status"),
    }


# --- servers ---------------------------------------------------------------------------------
# Rows the original upserted from its api: section at every start: this gateway's `main`.
BASE_SERVERS = frozenset({"base_OU", "base_OU_GroupAdd", "base_OU_Update"})
# The two rows its migration 000001 seeded (a test endpoint and a DHIS2 on localhost).
SEEDED_SERVERS = {"localhost": "http://localhost:8080/test", "dhis2": "http://localhost/api/dataValueSets"}


def server_name(name: str, taken: set[str]) -> str:
    """A ``servers:`` key for an original server name (a-z, 0-9, '_', '-'; never ``main``)."""
    base = re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_") or "server"
    if base == "main":
        base = "main_legacy"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


def base_url(url: str) -> str:
    """The DHIS2 instance root of an original server URL (which named an endpoint, e.g. …/api/dataValueSets)."""
    parts = urlsplit((url or "").strip())
    path = parts.path
    index = path.find("/api")
    path = path[:index] if index >= 0 else path
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def server_entry(legacy: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """``(servers: entry, environment variables with its secrets, review notes)`` for one row."""
    env_prefix = f"DHIS2GW_SERVERS_{name.upper().replace('-', '_')}_"
    token = (legacy.get("auth_token") or "").strip()
    method_text = (legacy.get("auth_method") or "").lower()
    use_pat = bool(token) and ("token" in method_text or "pat" in method_text or not legacy.get("password"))
    entry: dict[str, Any] = {"base_url": base_url(legacy.get("url") or ""),
                             "auth_method": "pat" if use_pat else "basic"}
    secrets: dict[str, str] = {}
    if use_pat:
        secrets[env_prefix + "PAT"] = token
    else:
        entry["user"] = legacy.get("username") or ""
        if legacy.get("password"):
            secrets[env_prefix + "PASSWORD"] = legacy["password"]
    notes = [f"from the Go dhis2gw's servers row {legacy.get('name')!r}: url {legacy.get('url')!r}, "
             f"auth_method {legacy.get('auth_method')!r}, system_type {legacy.get('system_type')!r}, "
             f"endpoint_type {legacy.get('endpoint_type')!r}"]
    seeded = SEEDED_SERVERS.get(legacy.get("name") or "")
    if legacy.get("suspended") or (seeded is not None and seeded == (legacy.get("url") or "").strip()):
        entry["enabled"] = False
        notes.append("disabled: " + ("suspended in the original" if legacy.get("suspended")
                                     else "a row seeded by the original's migration 000001"))
    if not entry["base_url"].startswith(("http://", "https://")):
        entry["enabled"] = False
        notes.append("disabled: no usable http(s) URL")
    return entry, secrets, notes
