"""``dhis2gw import-legacy``: bring an original Go dhis2gw database into this gateway's.

:func:`import_legacy` (synchronous, outside the reactor, like ``migrate``) reads the original's
tables through :class:`~dhis2gw.storage.legacy_source.LegacySource`, converts them
(:mod:`dhis2gw.legacy.convert`) and writes them in ONE transaction through
:class:`~dhis2gw.storage.legacy_target.LegacyTarget` — committed, or rolled back with
``dry_run``. It is idempotent: a second run finds everything present and changes nothing.

* users keep their bcrypt hash (verified at the next login, then replaced by argon2id); the
  seeded ``admin`` is imported deactivated; their active, unexpired API tokens keep working
  (stored by SHA-256, as this gateway stores its own);
* mappings keep their 13 columns and ``dimension_type``; ``dhis2_mapping_dimension`` rows
  (never used by the original) are counted and skipped;
* servers become a ``servers:`` YAML fragment for the operator to review, with the CC role
  lists of the original configuration file (its ``api.cc_dhis2_*`` keys, server names renamed);
  their passwords/tokens go to an environment file (mode 0600);
* every ``submission_log`` row becomes a submission in a final state with an ``imported``
  event; the rows still ``queued`` or ``failed`` there are listed, and :func:`requeue_imported`
  (``--requeue``) sends them through this gateway's requeue path.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from dhis2gw.auth.tokens import hash_api_token
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.legacy import convert
from dhis2gw.mapping.rows import UID_RE
from dhis2gw.storage.legacy_source import LegacySource
from dhis2gw.storage.legacy_target import LegacyTarget

CC_KEYS = ("cc_dhis2_servers", "cc_dhis2_hierarchy_servers", "cc_dhis2_create_servers", "cc_dhis2_update_servers",
           "cc_dhis2_ou_group_add_servers")
_BATCH = 1000
DEFAULT_SERVERS_OUT = "dhis2gw-servers-from-go.yml"
DEFAULT_ENV_OUT = "dhis2gw-servers-from-go.env"


class LegacyImportError(Exception):
    """The source is not a Go dhis2gw database (or cannot be imported); the message says why."""


@dataclass
class TableCounts:
    """What happened to one table's rows."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0

    def as_json(self) -> dict[str, int]:
        """The counters as a dict."""
        return {"read": self.read, "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "skipped": self.skipped}


@dataclass
class ImportSummary:
    """The outcome of a run (printed by the command; asserted by the tests)."""

    dry_run: bool = False
    tables: dict[str, TableCounts] = field(default_factory=lambda: {
        name: TableCounts() for name in ("users", "user_apitoken", "dhis2_mappings", "dhis2_mapping_dimension",
                                         "servers", "submission_log")})
    skipped: list[str] = field(default_factory=list)  # one line per skipped row (or group of rows), with why
    warnings: list[str] = field(default_factory=list)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)  # original status → {new status: n}
    # (original id, new submission id, original status) of the rows queued/failed in the original
    undelivered: list[tuple[int, int, str]] = field(default_factory=list)
    servers_file: str | None = None
    env_file: str | None = None
    files_changed: int = 0
    requeue: dict[str, Any] | None = None  # filled by requeue_imported

    @property
    def changes(self) -> int:
        """Rows and files written by this run (0 for a repeated run)."""
        return sum(t.inserted + t.updated for t in self.tables.values()) + self.files_changed

    def lines(self) -> list[str]:
        """The human summary."""
        out = [("DRY RUN: nothing was written. " if self.dry_run else "") + "Import from the Go dhis2gw:"]
        for name, counts in self.tables.items():
            out.append(f"  {name:<24} read {counts.read:>7}  inserted {counts.inserted:>7}  updated "
                       f"{counts.updated:>5}  unchanged {counts.unchanged:>7}  skipped {counts.skipped:>5}")
        for status, targets in sorted(self.statuses.items()):
            mapped = ", ".join(f"{n} → {new}" for new, n in sorted(targets.items()))
            out.append(f"  submission_log status {status!r}: {mapped}")
        if self.servers_file:
            out.append(f"  servers: fragment {self.servers_file}, secrets {self.env_file} (mode 0600): review and "
                       "merge them into the configuration")
        for warning in self.warnings:
            out.append(f"WARNING: {warning}")
        for reason in self.skipped:
            out.append(f"skipped: {reason}")
        if self.undelivered:
            out.append(f"{len(self.undelivered)} submission(s) were queued or failed in the Go dhis2gw and are not "
                       "delivered" + (" (requeued below)" if self.requeue is not None else
                                      "; run again with --requeue to deliver them:"))
            for legacy_id, new_id, status in self.undelivered[:50]:
                out.append(f"  submission_log #{legacy_id} ({status})"
                           + ("" if self.dry_run else f" → submission {new_id}"))
            if len(self.undelivered) > 50:
                out.append(f"  … and {len(self.undelivered) - 50} more (GET /api/v2/logs?q=legacy-<id>)")
        if self.requeue is not None:
            out.append("requeue: " + ", ".join(f"{k} {v}" for k, v in self.requeue.items()
                                               if k != "not_prepared_rows"))
            for line in self.requeue.get("not_prepared_rows", [])[:50]:
                out.append(f"  not requeued: {line}")
        out.append(f"changes: {self.changes}")
        return out


def cc_lists_from(document: Any) -> dict[str, tuple[str, ...]]:
    """The CC role lists of an original configuration file's ``api:`` section (raw YAML, names as written)."""
    api = (document or {}).get("api") or {} if isinstance(document, dict) else {}
    lists: dict[str, tuple[str, ...]] = {}
    for key in CC_KEYS:
        raw = api.get(key)
        if raw is None and key == "cc_dhis2_ou_group_add_servers":
            raw = api.get("cc_dhis2_ougroup_add_servers")  # the original sample's spelling
        items = raw if isinstance(raw, list) else str(raw or "").split(",")
        names = tuple(str(item).strip() for item in items if str(item).strip())
        if names:
            lists[key] = names
    return lists


def import_legacy(source_dsn: str, target_dsn: str, *, timezone: str,
                  cc_lists: dict[str, tuple[str, ...]] | None = None,
                  servers_out: str | None = None, env_out: str | None = None,
                  dry_run: bool = False) -> ImportSummary:
    """Run the import (see module docstring); the target must be migrated already."""
    summary = ImportSummary(dry_run=dry_run)
    if not dry_run:
        outputs = (("--servers-out", servers_out or DEFAULT_SERVERS_OUT), ("--env-out", env_out or DEFAULT_ENV_OUT))
        for option, path in outputs:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.access(directory, os.W_OK | os.X_OK):
                raise LegacyImportError(f"{option}: cannot write in {directory} (checked before importing anything)")
    source = LegacySource(source_dsn, timezone)
    if not any(source.has(t) for t in ("users", "dhis2_mappings", "submission_log", "servers")):
        source.close()
        raise LegacyImportError("the database has none of the Go dhis2gw's tables (users, dhis2_mappings, "
                                "submission_log, servers): is --from the right database?")
    target = LegacyTarget(target_dsn)
    try:
        _users(source, target, summary)
        _api_tokens(source, target, summary)
        _mappings(source, target, summary)
        _submissions(source, target, summary)
        servers = source.servers()
        source.finish()
        if dry_run:
            target.rollback()
        else:
            target.commit()
        _servers(servers, cc_lists or {}, summary, servers_out, env_out, write=not dry_run)
    finally:
        source.close()
        target.close()
    return summary


def _users(source: LegacySource, target: LegacyTarget, summary: ImportSummary) -> None:
    counts = summary.tables["users"]
    present = target.existing_usernames()
    this_run: set[str] = set()
    for legacy in source.users():
        counts.read += 1
        row, reason, warning = convert.user_row(legacy)
        if row is None:
            counts.skipped += 1
            summary.skipped.append(f"users #{legacy.get('id')}: {reason}")
            continue
        if row["username"].lower() in this_run:
            counts.skipped += 1  # the original compared usernames case-sensitively; this gateway does not
            summary.skipped.append(f"users #{legacy.get('id')}: {row['username']!r} differs only in case from "
                                   "another user of the Go dhis2gw")
            continue
        this_run.add(row["username"].lower())
        if row["username"].lower() in present:
            counts.unchanged += 1  # imported by an earlier run, or made here: either way left as it is
            continue
        if warning:
            summary.warnings.append(warning)
        target.insert_user(row)
        counts.inserted += 1


def _api_tokens(source: LegacySource, target: LegacyTarget, summary: ImportSummary) -> None:
    """Active tokens keep working (``Authorization: Token <hex>``), stored by hash; expired ones are said."""
    counts = summary.tables["user_apitoken"]
    now = datetime.now(UTC)
    for legacy in source.api_tokens():
        counts.read += 1
        token = (legacy.get("token") or "").strip()
        expires = legacy.get("expires_at")
        reason = None
        if not token:
            reason = "empty token"
        elif expires is not None and expires <= now:
            reason = (f"expired on {expires:%Y-%m-%d} (the Go dhis2gw never checked; "
                      "its user gets a new one with getToken or from an admin)")
        if reason is None:
            added = target.insert_api_token(legacy["username"], hash_api_token(token), token[:8], expires,
                                            legacy.get("created"))
            if added is None:
                reason = "its user was not imported"
            elif added:
                counts.inserted += 1
                continue
            else:
                counts.unchanged += 1
                continue
        counts.skipped += 1
        summary.skipped.append(f"user_apitoken #{legacy['id']} of {legacy['username']!r}: {reason}")


def _mappings(source: LegacySource, target: LegacyTarget, summary: ImportSummary) -> None:
    counts = summary.tables["dhis2_mappings"]
    uids = target.mapping_uids()
    used_uids = set(uids.values())
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for legacy in source.mappings():
        counts.read += 1
        row, reason = convert.mapping_row(legacy)
        if row is None:
            counts.skipped += 1
            summary.skipped.append(f"dhis2_mappings: {reason}")
            continue
        key = (row["code"], row["source_name"], row["instance_name"], row["what"])
        if key in rows:
            counts.skipped += 1
            summary.skipped.append(f"dhis2_mappings #{legacy['id']}: duplicate key {'/'.join(key)}")
            continue
        if key in uids:
            row["uid"] = uids[key]
        elif not (UID_RE.match(row["uid"]) and row["uid"] not in used_uids):
            row["uid"] = generate_uid()
        used_uids.add(row["uid"])
        rows[key] = row
    inserted, updated = target.upsert_mappings(list(rows.values()))
    counts.inserted, counts.updated = inserted, updated
    counts.unchanged = len(rows) - inserted - updated
    dimension = summary.tables["dhis2_mapping_dimension"]
    dimension.read = dimension.skipped = source.dimension_rows()
    if dimension.read:
        summary.skipped.append(f"dhis2_mapping_dimension: {dimension.read} row(s) — the Go dhis2gw never used "
                               "them and this gateway has no equivalent")


def _submissions(source: LegacySource, target: LegacyTarget, summary: ImportSummary) -> None:
    counts = summary.tables["submission_log"]
    existing = target.imported_keys(convert.LEGACY_KEY_PREFIX)
    batch: list[dict[str, Any]] = []
    undelivered: list[tuple[int, str, str]] = []  # (legacy id, key, status)

    def flush() -> None:
        ids = target.insert_submissions(batch, convert.IMPORT_ACTOR)
        for row in batch:
            existing[row["idempotency_key"]] = {"id": ids[row["idempotency_key"]], "status": row["status"],
                                                "requeued": False}
        counts.inserted += len(batch)
        batch.clear()

    for legacy in source.submission_log():
        counts.read += 1
        row = convert.submission_row(legacy)
        status = legacy["status"] if legacy.get("status") is not None else ""
        summary.statuses.setdefault(status, {}).setdefault(row["status"], 0)
        summary.statuses[status][row["status"]] += 1
        if status in convert.REQUEUE_STATUSES:
            undelivered.append((legacy["id"], row["idempotency_key"], status))
        if row["idempotency_key"] in existing:
            counts.unchanged += 1
            continue
        batch.append(row)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    for legacy_id, key, status in undelivered:
        found = existing[key]
        if found["status"] == "failed" and not found["requeued"]:
            summary.undelivered.append((legacy_id, found["id"], status))


# --- servers --------------------------------------------------------------------------------------
def _servers(rows: list[dict[str, Any]], cc_source: dict[str, tuple[str, ...]], summary: ImportSummary,
             servers_out: str | None, env_out: str | None, write: bool) -> None:
    counts = summary.tables["servers"]
    taken: set[str] = set()
    names: dict[str, str] = {}
    entries: list[tuple[str, dict[str, Any], list[str]]] = []
    secrets: dict[str, str] = {}
    for legacy in rows:
        counts.read += 1
        original = legacy.get("name") or ""
        if original in convert.BASE_SERVERS:
            counts.skipped += 1
            summary.skipped.append(f"servers {original!r}: the original made it from its api: section; "
                                   "here that DHIS2 is the destination 'main'")
            continue
        if not convert.base_url(legacy.get("url") or "").startswith(("http://", "https://")):
            counts.skipped += 1
            summary.skipped.append(f"servers {original!r}: no http(s) URL ({legacy.get('url')!r})")
            continue
        name = convert.server_name(original, taken)
        names[original] = name
        entry, entry_secrets, notes = convert.server_entry(legacy, name)
        entries.append((name, entry, notes))
        secrets.update(entry_secrets)
    cc_lists: dict[str, str] = {}
    for key in CC_KEYS:
        listed = cc_source.get(key, ())
        if not listed:
            continue
        mapped = []
        for original in listed:
            if original in names:
                mapped.append(names[original])
            else:
                summary.warnings.append(f"api.{key} names {original!r}, which is no server of the Go dhis2gw")
        if mapped:
            cc_lists[key] = ",".join(mapped)
    if not entries and not cc_lists:
        return
    servers_path = Path(servers_out or DEFAULT_SERVERS_OUT)
    env_path = Path(env_out or DEFAULT_ENV_OUT)
    summary.servers_file, summary.env_file = str(servers_path), str(env_path)
    fragment = _fragment(entries, cc_lists, env_path)
    env_text = "".join(f"{k}={_env_quote(v)}\n" for k, v in sorted(secrets.items()))
    previous = servers_path.read_text() if servers_path.exists() else None
    counts.inserted = len(entries) if previous is None else 0
    counts.unchanged = len(entries) - counts.inserted
    if not write:
        return
    for path, text, mode in ((servers_path, fragment, 0o640), (env_path, env_text, 0o600)):
        if path.exists() and path.read_text() == text:
            os.chmod(path, mode)
            continue
        if path.exists():
            os.chmod(path, mode)  # before the secrets go in: O_CREAT's mode does not change an existing file's
            if path is servers_path:
                counts.updated, counts.unchanged = len(entries), 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(path, mode)  # a umask may have narrowed the new file's mode: set it exactly
        summary.files_changed += 1


def _env_quote(value: str) -> str:
    """A value for a systemd EnvironmentFile (/etc/default/dhis2gw): bare when safe, else double-quoted."""
    if value and all(c.isalnum() or c in "-_./:@+=" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fragment(entries: Iterable[tuple[str, dict[str, Any], list[str]]], cc_lists: dict[str, str],
              env_path: Path) -> str:
    lines = ["# Servers of the Go dhis2gw, written by `dhis2gw import-legacy` for review.",
             "# Merge the keys below into the gateway's configuration file. Passwords and tokens are not",
             f"# here: they are in {env_path} (mode 0600) as DHIS2GW_SERVERS_<NAME>_PASSWORD/_PAT",
             "# variables; add its lines to the service's environment file (/etc/default/dhis2gw)."]
    if cc_lists:
        lines.append("api:")
        lines.extend(f"  {key}: {yaml.safe_dump(value, default_style=None).splitlines()[0]}"
                     for key, value in cc_lists.items())
    lines.append("servers:")
    for name, entry, notes in entries:
        lines.extend(f"  # {note}" for note in notes)
        body = yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=False)
        lines.extend("  " + line for line in body.splitlines())
    return "\n".join(lines) + "\n"
