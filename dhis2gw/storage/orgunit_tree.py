"""OrgUnitStore: the local copy of the DHIS2 org-unit hierarchy (units, levels, groups, members).

Writes are diff-only: an upsert touches a row only when one of its columns really changes, so a
sync of an unchanged tree writes nothing. Units are never deleted; a unit that left the synced
tree is flagged ``gone_from_dhis2`` (with ``gone_at``) and comes back to life if it reappears.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dhis2gw.storage.database import Database, cursor_fetch, json_param

_UNIT_COLUMNS = ("uid", "code", "name", "short_name", "level", "path", "parent_uid", "opening_date",
                 "closed_date", "attributes", "dhis2_last_updated", "content_hash")

# jsonb_to_recordset column list for the incoming units.
_RECORD = ("uid text, code text, name text, short_name text, level int, path text, parent_uid text,"
           " opening_date date, closed_date date, attributes jsonb, dhis2_last_updated timestamp,"
           " content_hash text")

_UPSERT_UNITS = f"""
WITH x AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({_RECORD})),
old AS (SELECT o.uid, o.path FROM organisation_units o JOIN x ON x.uid = o.uid),
up AS (
  INSERT INTO organisation_units AS t (uid, code, name, short_name, level, path, parent_uid, opening_date,
      closed_date, attributes, dhis2_last_updated, content_hash, baseline)
  SELECT uid, code, name, short_name, level, path, parent_uid, opening_date, closed_date,
      coalesce(attributes, '[]'::jsonb), dhis2_last_updated, content_hash, %(baseline)s FROM x
  ON CONFLICT (uid) DO UPDATE SET
      code = EXCLUDED.code, name = EXCLUDED.name, short_name = EXCLUDED.short_name, level = EXCLUDED.level,
      path = EXCLUDED.path, parent_uid = EXCLUDED.parent_uid, opening_date = EXCLUDED.opening_date,
      closed_date = EXCLUDED.closed_date, attributes = EXCLUDED.attributes,
      dhis2_last_updated = EXCLUDED.dhis2_last_updated, content_hash = EXCLUDED.content_hash,
      gone_from_dhis2 = false, gone_at = NULL, updated_at = now(),
      revision = t.revision + CASE WHEN t.content_hash IS DISTINCT FROM EXCLUDED.content_hash THEN 1 ELSE 0 END
  WHERE (t.code, t.name, t.short_name, t.level, t.path, t.parent_uid, t.opening_date, t.closed_date,
         t.attributes, t.content_hash, t.gone_from_dhis2)
        IS DISTINCT FROM
        (EXCLUDED.code, EXCLUDED.name, EXCLUDED.short_name, EXCLUDED.level, EXCLUDED.path, EXCLUDED.parent_uid,
         EXCLUDED.opening_date, EXCLUDED.closed_date, EXCLUDED.attributes, EXCLUDED.content_hash, false)
  RETURNING t.uid, t.path, t.level, (xmax = 0) AS inserted
)
SELECT up.uid, up.path, up.level, up.inserted, old.path AS old_path FROM up LEFT JOIN old ON old.uid = up.uid
"""


@dataclass
class UpsertResult:
    """What an upsert changed: inserted and updated uids, and units whose path moved."""

    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    moved: list[tuple[str, str, int]] = field(default_factory=list)  # (old_path, new_path, new_level)


@dataclass(frozen=True)
class UnitQuery:
    """Filters of ``GET /orgunits``."""

    level: int | None = None
    parent: str | None = None
    path_prefix: str | None = None
    q: str | None = None
    district_uids: Sequence[str] | None = None
    include_gone: bool = False
    page: int = 1
    page_size: int = 50


class OrgUnitStore:
    """SQL for the org-unit tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- sync state ---------------------------------------------------------------------
    async def state(self, name: str) -> dict[str, Any] | None:
        """The sync state row of source ``name`` (scope, watermark), or None before the first sync."""
        return await self.db.fetch_one("orgunits.state", "SELECT * FROM orgunit_sync_state WHERE name = %s", (name,))

    async def save_state(self, name: str, scope: Any, watermark: str | None, full: bool) -> None:
        """Record a finished sync run of ``name``."""
        await self.db.execute(
            "orgunits.save_state",
            "INSERT INTO orgunit_sync_state (name, scope, watermark, full_synced_at, last_run_at)"
            " VALUES (%s, %s, %s, CASE WHEN %s THEN now() END, now())"
            " ON CONFLICT (name) DO UPDATE SET scope = EXCLUDED.scope, watermark = EXCLUDED.watermark,"
            " full_synced_at = coalesce(EXCLUDED.full_synced_at, orgunit_sync_state.full_synced_at),"
            " last_run_at = now()",
            (name, json_param(scope), watermark, full))

    # --- units --------------------------------------------------------------------------
    async def upsert_units(self, units: Sequence[dict[str, Any]], baseline: bool, chunk: int = 1000) -> UpsertResult:
        """Insert new units, update changed ones (only those), in chunks of ``chunk`` rows."""
        result = UpsertResult()
        for start in range(0, len(units), chunk):
            rows = await self.db.fetch("orgunits.upsert", _UPSERT_UNITS,
                                       {"rows": json_param(list(units[start:start + chunk])), "baseline": baseline})
            for row in rows:
                (result.inserted if row["inserted"] else result.updated).append(row["uid"].strip())
                if row["old_path"] and row["old_path"] != row["path"]:
                    result.moved.append((row["old_path"], row["path"], row["level"]))
        return result

    async def move_descendants(self, old_path: str, new_path: str, new_level: int) -> int:
        """Rewrite the paths and levels below a unit that moved (DHIS2 does not touch their lastUpdated)."""
        old_level = old_path.count("/")
        rows = await self.db.fetch(
            "orgunits.move",
            "UPDATE organisation_units SET path = %s || substr(path, length(%s) + 1), level = level + %s,"
            " updated_at = now() WHERE path LIKE %s RETURNING uid",
            (new_path, old_path, new_level - old_level, _like_prefix(old_path) + "/%"))
        return len(rows)

    async def mark_gone(self, live_uids: Iterable[str]) -> int:
        """Flag units missing from ``live_uids`` as gone (never deleted); returns how many were flagged."""
        rows = await self.db.fetch(
            "orgunits.mark_gone",
            "UPDATE organisation_units SET gone_from_dhis2 = true, gone_at = now(), updated_at = now()"
            " WHERE NOT gone_from_dhis2 AND NOT (uid = ANY(%s::char(11)[])) RETURNING uid", (list(live_uids),))
        return len(rows)

    async def revive(self, live_uids: Iterable[str]) -> int:
        """Clear the gone flag of units that are back in the tree."""
        rows = await self.db.fetch(
            "orgunits.revive",
            "UPDATE organisation_units SET gone_from_dhis2 = false, gone_at = NULL, updated_at = now()"
            " WHERE gone_from_dhis2 AND uid = ANY(%s::char(11)[]) RETURNING uid", (list(live_uids),))
        return len(rows)

    async def live_units(self) -> list[dict[str, Any]]:
        """Every unit still in the tree, parents first (for propagation planning)."""
        rows = await self.db.fetch(
            "orgunits.live",
            "SELECT uid, code, name, short_name, level, path, parent_uid, opening_date, closed_date, revision,"
            " baseline FROM organisation_units WHERE NOT gone_from_dhis2 ORDER BY level, path")
        for row in rows:
            row["uid"] = row["uid"].strip()
            row["parent_uid"] = row["parent_uid"].strip() if row["parent_uid"] else None
        return rows

    async def count(self) -> int:
        """How many units (live or gone) the local copy holds."""
        row = await self.db.fetch_one("orgunits.count", "SELECT count(*) AS n FROM organisation_units")
        return int(row["n"]) if row else 0

    # --- levels and groups -----------------------------------------------------------------
    async def replace_levels(self, levels: Sequence[dict[str, Any]]) -> int:
        """Make organisation_unit_levels equal ``levels`` ({uid, level, name}); returns rows changed."""
        async def write(cursor: Any) -> int:
            uids = [lv["uid"] for lv in levels]
            changed = len(await cursor_fetch(
                cursor, "DELETE FROM organisation_unit_levels WHERE NOT (uid = ANY(%s::char(11)[])) RETURNING uid",
                (uids,)))
            # A level number may move to another uid: free the numbers first (UNIQUE (level)).
            changed += len(await cursor_fetch(
                cursor, "DELETE FROM organisation_unit_levels l USING jsonb_to_recordset(%s::jsonb)"
                " AS x(uid text, level int, name text) WHERE l.level = x.level AND l.uid <> x.uid RETURNING l.uid",
                (json_param(list(levels)),)))
            changed += len(await cursor_fetch(
                cursor, "INSERT INTO organisation_unit_levels AS t (uid, level, name)"
                " SELECT uid, level, name FROM jsonb_to_recordset(%s::jsonb) AS x(uid text, level int, name text)"
                " ON CONFLICT (uid) DO UPDATE SET level = EXCLUDED.level, name = EXCLUDED.name, updated_at = now()"
                " WHERE (t.level, t.name) IS DISTINCT FROM (EXCLUDED.level, EXCLUDED.name) RETURNING t.uid",
                (json_param(list(levels)),)))
            return changed

        return await self.db.transaction("orgunits.levels", write)

    async def replace_groups(self, groups: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Make the groups and their memberships equal ``groups`` ({uid, code, name, members}).

        Returns counts of groups changed and memberships added/removed; unchanged rows are not written.
        """
        async def write(cursor: Any) -> dict[str, int]:
            meta = [{"uid": g["uid"], "code": g.get("code"), "name": g["name"]} for g in groups]
            members = [{"g": g["uid"], "u": u} for g in groups for u in g["members"]]
            removed_groups = len(await cursor_fetch(
                cursor, "DELETE FROM organisation_unit_groups WHERE NOT (uid = ANY(%s::char(11)[])) RETURNING uid",
                ([g["uid"] for g in groups],)))
            changed = len(await cursor_fetch(
                cursor, "INSERT INTO organisation_unit_groups AS t (uid, code, name)"
                " SELECT uid, code, name FROM jsonb_to_recordset(%s::jsonb) AS x(uid text, code text, name text)"
                " ON CONFLICT (uid) DO UPDATE SET code = EXCLUDED.code, name = EXCLUDED.name, updated_at = now()"
                " WHERE (t.code, t.name) IS DISTINCT FROM (EXCLUDED.code, EXCLUDED.name) RETURNING t.uid",
                (json_param(meta),)))
            removed = len(await cursor_fetch(
                cursor, "DELETE FROM organisation_unit_group_members m WHERE NOT EXISTS (SELECT 1 FROM"
                " jsonb_to_recordset(%s::jsonb) AS x(g text, u text) WHERE x.g = m.group_uid AND x.u = m.unit_uid)"
                " RETURNING m.unit_uid", (json_param(members),)))
            added = len(await cursor_fetch(
                cursor, "INSERT INTO organisation_unit_group_members (group_uid, unit_uid)"
                " SELECT g, u FROM jsonb_to_recordset(%s::jsonb) AS x(g text, u text)"
                " ON CONFLICT DO NOTHING RETURNING unit_uid", (json_param(members),)))
            return {"groups_changed": changed + removed_groups, "memberships_added": added,
                    "memberships_removed": removed}

        return await self.db.transaction("orgunits.groups", write)

    async def memberships(self) -> dict[str, list[str]]:
        """unit uid -> sorted group uids."""
        rows = await self.db.fetch(
            "orgunits.memberships",
            "SELECT unit_uid, array_agg(group_uid ORDER BY group_uid) AS groups"
            " FROM organisation_unit_group_members GROUP BY unit_uid")
        return {r["unit_uid"].strip(): [g.strip() for g in r["groups"]] for r in rows}

    async def level_number(self, name: str) -> int | None:
        """The level number whose name is ``name`` (case-insensitive), or None."""
        row = await self.db.fetch_one("orgunits.level_by_name",
                                      "SELECT level FROM organisation_unit_levels WHERE lower(name) = lower(%s)",
                                      (name,))
        return int(row["level"]) if row else None

    async def find_at_level(self, level: int, ident: str) -> list[str]:
        """UIDs of units at ``level`` whose uid, code or name is ``ident`` (name case-insensitive)."""
        rows = await self.db.fetch(
            "orgunits.find_at_level",
            "SELECT uid FROM organisation_units"
            " WHERE level = %s AND (uid = %s OR code = %s OR lower(name) = lower(%s))",
            (level, ident[:11], ident, ident))
        return [r["uid"].strip() for r in rows]

    # --- API reads ----------------------------------------------------------------------
    async def query(self, q: UnitQuery, district_level: int | None) -> tuple[list[dict[str, Any]], int]:
        """One page of units matching ``q`` (ordered by path) and the total count."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if not q.include_gone:
            where.append("NOT o.gone_from_dhis2")
        if q.level is not None:
            where.append("o.level = %s")
            params.append(q.level)
        if q.parent:
            where.append("o.parent_uid = %s")
            params.append(q.parent)
        if q.path_prefix:
            where.append("o.path LIKE %s")
            params.append(_like_prefix(q.path_prefix) + "%")
        if q.q:
            where.append("(lower(o.name) LIKE %s OR lower(o.code) LIKE %s OR o.uid = %s)")
            pattern = "%" + _like_prefix(q.q.lower()) + "%"
            params += [pattern, pattern, q.q[:11]]
        if q.district_uids is not None:
            if not q.district_uids:
                where.append("FALSE")
            else:
                where.append("(" + " OR ".join(["o.path LIKE %s"] * len(q.district_uids)) + ")")
                params += ["%/" + _like_prefix(u) + "%" for u in q.district_uids]
        clause = " AND ".join(where)
        total_row = await self.db.fetch_one("orgunits.query.count",
                                            f"SELECT count(*) AS n FROM organisation_units o WHERE {clause}", params)
        district_join = ("LEFT JOIN organisation_units d ON d.uid = split_part(o.path, '/', %s + 1)"
                         if district_level else "LEFT JOIN organisation_units d ON FALSE")
        join_params = [district_level] if district_level else []
        rows = await self.db.fetch(
            "orgunits.query",
            "SELECT o.uid, o.code, o.name, o.short_name, o.level, o.path, o.parent_uid, o.opening_date,"
            " o.closed_date, o.attributes, o.dhis2_last_updated, o.gone_from_dhis2, o.gone_at, o.updated_at,"
            " d.uid AS district_uid, d.name AS district_name,"
            " (SELECT coalesce(array_agg(m.group_uid ORDER BY m.group_uid), '{}')"
            " FROM organisation_unit_group_members m"
            "  WHERE m.unit_uid = o.uid) AS groups"
            f" FROM organisation_units o {district_join} WHERE {clause}"
            " ORDER BY o.path LIMIT %s OFFSET %s",
            join_params + params + [q.page_size, (q.page - 1) * q.page_size])
        return rows, int(total_row["n"]) if total_row else 0


def _like_prefix(text: str) -> str:
    """Escape LIKE wildcards in ``text``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
