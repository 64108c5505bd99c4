"""Seeded DHIS2 metadata: org-unit tree, data sets, category combos, programs, users.

:class:`Metadata` is loaded from ``country.yml`` (or any YAML file with the same keys) or
generated (:meth:`Metadata.generate`) for large-tree tests. Objects are plain dicts keyed by
DHIS2 collection name (``organisationUnits``, ``dataSets`` …); references hold UIDs and are
turned into nested objects by :mod:`dhis2gw.sim.fields` when a client asks for them.
"""
from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dhis2gw.sim.uids import new_uid

DEFAULT_CATEGORY_COMBO = "bjDvmb4bfuf"
DEFAULT_COC = "HllvX50cXC0"

#: Reference fields per collection: field -> referenced collection (lists allowed).
REF_FIELDS: dict[str, dict[str, str]] = {
    "organisationUnits": {"parent": "organisationUnits", "children": "organisationUnits",
                          "ancestors": "organisationUnits",
                          "organisationUnitGroups": "organisationUnitGroups",
                          "dataSets": "dataSets", "programs": "programs"},
    "organisationUnitGroups": {"organisationUnits": "organisationUnits"},
    "categories": {"categoryOptions": "categoryOptions"},
    "categoryCombos": {"categories": "categories", "categoryOptionCombos": "categoryOptionCombos"},
    "categoryOptionCombos": {"categoryCombo": "categoryCombos", "categoryOptions": "categoryOptions"},
    "dataElements": {"categoryCombo": "categoryCombos"},
    "dataSets": {"categoryCombo": "categoryCombos", "organisationUnits": "organisationUnits"},
    "trackedEntityTypes": {},
    "programs": {"trackedEntityType": "trackedEntityTypes", "categoryCombo": "categoryCombos",
                 "organisationUnits": "organisationUnits", "programStages": "programStages"},
    "programStages": {"program": "programs"},
    "users": {"organisationUnits": "organisationUnits"},
}
#: Embedded object lists and the references inside them.
EMBEDDED: dict[str, dict[str, dict[str, str]]] = {
    "dataSets": {"dataSetElements": {"dataElement": "dataElements", "categoryCombo": "categoryCombos",
                                     "dataSet": "dataSets"}},
    "trackedEntityTypes": {"trackedEntityTypeAttributes": {"trackedEntityAttribute": "trackedEntityAttributes"}},
    "programs": {"programTrackedEntityAttributes": {"trackedEntityAttribute": "trackedEntityAttributes"}},
    "programStages": {"programStageDataElements": {"dataElement": "dataElements"}},
}
COLLECTIONS = ("organisationUnitLevels", "organisationUnits", "organisationUnitGroups", "categoryOptions",
               "categories", "categoryCombos", "categoryOptionCombos", "dataElements", "dataSets",
               "trackedEntityAttributes", "trackedEntityTypes", "programs", "programStages",
               "relationshipTypes", "users")


@dataclass(frozen=True)
class Ref:
    """A reference from one metadata object to another, resolved on output."""

    kind: str
    uid: str


class Metadata:
    """All metadata of one simulated server, with id-scheme lookups."""

    def __init__(self, raw: dict[str, Any]) -> None:
        """Build from the YAML structure (see ``country.yml``)."""
        raw = copy.deepcopy(raw)
        self.country: dict[str, Any] = raw.get("country", {})
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in COLLECTIONS}
        for kind in COLLECTIONS:
            if kind == "programStages":
                continue
            for obj in raw.get(kind) or []:
                self.objects[kind][obj["id"]] = obj
        for program in self.objects["programs"].values():
            stages = program.pop("programStages", []) or []
            program["programStages"] = [s["id"] for s in stages]
            for stage in stages:
                stage["program"] = program["id"]
                self.objects["programStages"][stage["id"]] = stage
        self._index_tree()
        for kind in ("organisationUnitGroups", "dataSets", "programs"):
            for obj in self.objects[kind].values():
                obj["organisationUnits"] = self.select_units(obj.get("organisationUnits"))
        for user in self.objects["users"].values():
            user["organisationUnits"] = self.select_units(user.get("organisationUnits"))
        for ds in self.objects["dataSets"].values():
            for dse in ds.get("dataSetElements", []):
                dse["dataSet"] = ds["id"]
        self.reindex()

    # -- construction ------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Metadata:
        """Load a YAML metadata file."""
        with open(path, encoding="utf-8") as f:
            return cls(yaml.safe_load(f))

    @classmethod
    def default_raw(cls) -> dict[str, Any]:
        """The parsed bundled ``country.yml``."""
        text = resources.files("dhis2gw.sim").joinpath("country.yml").read_text(encoding="utf-8")
        raw: dict[str, Any] = yaml.safe_load(text)
        return raw

    @classmethod
    def load_default(cls) -> Metadata:
        """The bundled small country (47 org units, 32 facilities)."""
        return cls(cls.default_raw())

    @classmethod
    def generate(cls, facilities: int = 2000, seed: int = 1) -> Metadata:
        """The default country with a generated 5-level tree of about *facilities* facilities.

        The root and the first region keep their default UIDs so the data-set, program and
        user assignments of ``country.yml`` still resolve. Every unit has a fixed-by-seed UID,
        a code ``GEN_…`` and a ``lastUpdated`` spread over 2023 (for ``lastUpdated:ge:`` tests).
        """
        raw = cls.default_raw()
        rng = random.Random(seed)
        old = raw["organisationUnits"]
        root = dict(old[0])
        first_region = next(o for o in old if o.get("parent") == root["id"])
        units: list[dict[str, Any]] = [root]
        per_sub, subs_per_district, districts_per_region = 10, 5, 5
        per_region = per_sub * subs_per_district * districts_per_region
        regions = max(1, -(-facilities // per_region))
        made = 0

        def add(name: str, code: str, parent: str, uid: str | None = None) -> str:
            uid = uid or new_uid(rng)
            month = 1 + len(units) % 12
            units.append({"id": uid, "code": code, "name": name, "shortName": name[:50], "parent": parent,
                          "openingDate": "1995-01-01", "lastUpdated": f"2023-{month:02d}-15T08:00:00.000"})
            return uid

        for r in range(regions):
            region = add(f"Region {r + 1}", f"GEN_R{r + 1}", root["id"],
                         first_region["id"] if r == 0 else None)
            for d in range(districts_per_region):
                district = add(f"District {r + 1}.{d + 1}", f"GEN_R{r + 1}_D{d + 1}", region)
                for s in range(subs_per_district):
                    sub = add(f"Sub-county {r + 1}.{d + 1}.{s + 1}", f"GEN_R{r + 1}_D{d + 1}_S{s + 1}", district)
                    for f in range(per_sub):
                        if made >= facilities:
                            break
                        made += 1
                        add(f"Facility {r + 1}.{d + 1}.{s + 1}.{f + 1}",
                            f"GEN_R{r + 1}_D{d + 1}_S{s + 1}_F{f + 1}", sub)
        raw["organisationUnits"] = units
        return cls(raw)

    # -- indexes -------------------------------------------------------------
    def _index_tree(self) -> None:
        """Compute path, level, children and ancestors of every org unit."""
        units = self.objects["organisationUnits"]
        for ou in units.values():
            ou["children"] = []
        for ou in units.values():
            parent = ou.get("parent")
            if parent and parent in units:
                units[parent]["children"].append(ou["id"])
        for ou in units.values():
            chain = [ou["id"]]
            p = ou.get("parent")
            while p and p in units and len(chain) < 20:
                chain.append(p)
                p = units[p].get("parent")
            chain.reverse()
            ou["path"] = "/" + "/".join(chain)
            ou["level"] = len(chain)
            ou["ancestors"] = chain[:-1]
            ou["leaf"] = not ou["children"]
            ou.setdefault("created", ou.get("lastUpdated", "2020-01-01T00:00:00.000"))

    def reindex(self) -> None:
        """Rebuild code/name indexes and the reverse membership lists of org units."""
        self._by_code: dict[str, dict[str, str]] = {}
        self._by_name: dict[str, dict[str, str]] = {}
        for kind, objs in self.objects.items():
            codes = self._by_code[kind] = {}
            names = self._by_name[kind] = {}
            for uid, obj in objs.items():
                if obj.get("code"):
                    codes[str(obj["code"])] = uid
                if obj.get("name"):
                    names[str(obj["name"])] = uid
        units = self.objects["organisationUnits"]
        for ou in units.values():
            ou["organisationUnitGroups"], ou["dataSets"], ou["programs"] = [], [], []
        for field, kind in (("organisationUnitGroups", "organisationUnitGroups"), ("dataSets", "dataSets"),
                            ("programs", "programs")):
            for obj in self.objects[kind].values():
                for ou in obj.get("organisationUnits", []):
                    if ou in units:
                        units[ou][field].append(obj["id"])
        for cc in self.objects["categoryCombos"].values():
            cc["categoryOptionCombos"] = [c["id"] for c in self.objects["categoryOptionCombos"].values()
                                          if c["categoryCombo"] == cc["id"]]

    def select_units(self, selector: Any) -> list[str]:
        """Resolve an org-unit selector: a UID list or ``{level, under, codeLike, codeNotLike}``."""
        if selector is None:
            return []
        if isinstance(selector, list):
            return [u for u in selector if u in self.objects["organisationUnits"]]
        result = []
        for ou in self.objects["organisationUnits"].values():
            if "level" in selector and ou["level"] != selector["level"]:
                continue
            if "under" in selector and f"/{selector['under']}" not in ou["path"]:
                continue
            if "codeLike" in selector and selector["codeLike"] not in str(ou.get("code", "")):
                continue
            if "codeNotLike" in selector and selector["codeNotLike"] in str(ou.get("code", "")):
                continue
            result.append(ou["id"])
        return result

    # -- lookups -------------------------------------------------------------
    def get(self, kind: str, uid: str | None) -> dict[str, Any] | None:
        """The object of *kind* with *uid*, or None."""
        if not isinstance(uid, str):
            return None
        return self.objects[kind].get(uid)

    def lookup(self, kind: str, value: Any, scheme: str = "UID") -> dict[str, Any] | None:
        """Find an object by UID, CODE or NAME (DHIS2 id schemes; ``ATTRIBUTE:`` unsupported)."""
        if not isinstance(value, str) or not value:
            return None
        scheme = (scheme or "UID").upper()
        if scheme in ("UID", "ID", "AUTO"):
            return self.objects[kind].get(value)
        if scheme == "CODE":
            uid = self._by_code[kind].get(value)
        elif scheme == "NAME":
            uid = self._by_name[kind].get(value)
        else:
            return None
        return self.objects[kind].get(uid) if uid else None

    def full(self, kind: str, uid: str) -> dict[str, Any]:
        """The object as a dict whose references are :class:`Ref` values."""
        obj = self.objects[kind][uid]
        refs = REF_FIELDS.get(kind, {})
        embedded = EMBEDDED.get(kind, {})
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if key in ("password",):
                continue
            if key in refs:
                target = refs[key]
                if isinstance(value, list):
                    out[key] = [Ref(target, v) for v in value]
                elif value:
                    out[key] = Ref(target, value)
            elif key in embedded:
                out[key] = [{k: (Ref(embedded[key][k], v) if k in embedded[key] and v else v)
                             for k, v in item.items()} for item in value]
            else:
                out[key] = value
        if "name" in obj:
            out.setdefault("displayName", obj["name"])
        if "shortName" in obj:
            out.setdefault("displayShortName", obj["shortName"])
        return out

    # -- aggregate helpers ---------------------------------------------------
    def data_sets_of(self, de_uid: str) -> list[dict[str, Any]]:
        """Data sets containing the data element."""
        return [ds for ds in self.objects["dataSets"].values()
                if any(e["dataElement"] == de_uid for e in ds.get("dataSetElements", []))]

    def coc_ids_of_combo(self, cc_uid: str) -> set[str]:
        """Category option combo UIDs of a category combo."""
        return {c["id"] for c in self.objects["categoryOptionCombos"].values() if c["categoryCombo"] == cc_uid}

    def valid_cocs_for(self, de_uid: str) -> set[str]:
        """COCs allowed for a data element: its own combo plus data-set-element overrides."""
        de = self.objects["dataElements"][de_uid]
        combos = {de["categoryCombo"]}
        for ds in self.data_sets_of(de_uid):
            for e in ds["dataSetElements"]:
                if e["dataElement"] == de_uid and e.get("categoryCombo"):
                    combos.add(e["categoryCombo"])
        return set().union(*(self.coc_ids_of_combo(c) for c in combos))

    def org_unit_descendants(self, uid: str) -> Iterable[str]:
        """UIDs of *uid* and everything below it."""
        prefix = self.objects["organisationUnits"][uid]["path"]
        return [o["id"] for o in self.objects["organisationUnits"].values()
                if o["path"] == prefix or o["path"].startswith(prefix + "/")]

    def program_of_stage(self, stage_uid: str) -> dict[str, Any] | None:
        """The program owning a program stage."""
        stage = self.objects["programStages"].get(stage_uid)
        return self.objects["programs"].get(stage["program"]) if stage else None

    def retree(self) -> None:
        """Recompute paths/levels after an org unit was added or moved."""
        self._index_tree()
        self.reindex()
