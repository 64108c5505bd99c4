"""UIDs for tracker payloads: assigned at acceptance, references kept consistent.

Why (reference/dhis2-api.md §3.7): DHIS2 invents a UID for every object sent without one, so a
re-sent request whose answer was lost would create a second person. The gateway therefore gives
every tracked entity, enrollment, event, relationship and note its UID before the first attempt;
with ``importStrategy=CREATE_AND_UPDATE`` a retry then updates the same objects.

Submitters may name objects with their own ids:

* a ``reference`` field on any object (a gateway extension, removed from what DHIS2 receives);
* for tracked entities, the value of a source-id attribute (``sourceIdAttribute`` query option);

and may use those ids wherever a UID is expected: an enrollment's ``trackedEntity``, an event's
``enrollment``, a relationship's ``from``/``to`` item. A reference is resolved, in order, to an
object of this payload, then to the ``uid_map`` (an object sent earlier by the same source), then
taken literally if it is a valid UID; anything else is an error listed back to the submitter.
Nested children always get their parent's UID.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

from dhis2gw.dhis2.uids import generate_uid, is_valid_uid

TYPES = ("TRACKED_ENTITY", "ENROLLMENT", "EVENT", "RELATIONSHIP")
ID_KEY = {"TRACKED_ENTITY": "trackedEntity", "ENROLLMENT": "enrollment", "EVENT": "event",
          "RELATIONSHIP": "relationship"}
COLLECTION = {"TRACKED_ENTITY": "trackedEntities", "ENROLLMENT": "enrollments", "EVENT": "events",
              "RELATIONSHIP": "relationships"}
ITEM_TYPE = {"trackedEntity": "TRACKED_ENTITY", "enrollment": "ENROLLMENT", "event": "EVENT"}
# Nested children: (list key, child type) per parent type.
CHILDREN = {"TRACKED_ENTITY": (("enrollments", "ENROLLMENT"), ("relationships", "RELATIONSHIP")),
            "ENROLLMENT": (("events", "EVENT"), ("relationships", "RELATIONSHIP")),
            "EVENT": (("relationships", "RELATIONSHIP"),),
            "RELATIONSHIP": ()}
# Parent references a flat object may carry: field → referenced type.
PARENT_REFS = {"ENROLLMENT": (("trackedEntity", "TRACKED_ENTITY"),),
               "EVENT": (("enrollment", "ENROLLMENT"), ("trackedEntity", "TRACKED_ENTITY"))}

Key = tuple[str, str]


class UidMap(Protocol):
    """Where submitters' ids are remembered (dhis2gw.storage.uid_map.UidMapStore)."""

    async def source_system(self, submitter_id: int | None, source_name: str | None) -> str:
        """The namespace of a submitter's ids."""

    async def lookup(self, source_system: str, keys: Any) -> dict[Key, str]:
        """Stored UIDs of (type, source id) keys."""

    async def remember(self, source_system: str, pairs: dict[Key, str]) -> dict[Key, str]:
        """Store new pairs (first writer wins); return what is stored."""


@dataclass
class Slot:
    """One tracker object of the payload being prepared."""

    ttype: str
    obj: dict[str, Any]
    path: str
    reference: str | None = None
    parent: Slot | None = None
    uid: str = ""


@dataclass
class PreparedTracker:
    """The payload as DHIS2 will receive it, with what the submitter gets back."""

    payload: dict[str, Any]
    uids: dict[str, dict[str, str]]
    counts: dict[str, int]
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def object_count(self) -> int:
        """Number of tracker objects (nested ones included)."""
        return sum(self.counts.values())


def collect(payload: dict[str, Any], source_attribute: str | None = None, strip: bool = False) -> list[Slot]:
    """Every tracker object in ``payload`` (flat and nested), parents before children.

    ``strip`` removes the ``reference`` fields (the gateway extension DHIS2 must not receive).
    """
    slots: list[Slot] = []

    def take(ttype: str, obj: Any, path: str, parent: Slot | None) -> None:
        if not isinstance(obj, dict):
            return
        reference = obj.pop("reference", None) if strip else obj.get("reference")
        if reference is None and ttype == "TRACKED_ENTITY" and source_attribute:
            for attr in obj.get("attributes") or []:
                if isinstance(attr, dict) and attr.get("attribute") == source_attribute \
                        and attr.get("value") not in (None, ""):
                    reference = str(attr["value"])
        slot = Slot(ttype, obj, path, str(reference) if reference is not None else None, parent)
        slots.append(slot)
        for list_key, child_type in CHILDREN[ttype]:
            for i, child in enumerate(obj.get(list_key) or []):
                take(child_type, child, f"{path}/{list_key}/{i}", slot)

    for ttype in TYPES:
        for i, obj in enumerate(payload.get(COLLECTION[ttype]) or []):
            take(ttype, obj, f"{COLLECTION[ttype]}/{i}", None)
    return slots


def _item_ref(item: Any, key: str) -> Any:
    """The referenced id of a relationship item side, in either RelationshipItem shape."""
    value = item[key]
    return value.get(key) if isinstance(value, dict) else value


def _set_item_ref(item: dict[str, Any], key: str, uid: str) -> None:
    if isinstance(item[key], dict):
        item[key][key] = uid
    else:
        item[key] = uid


def _references(slot: Slot) -> list[tuple[str, str, Any]]:
    """(field path, referenced type, value) of every parent/end reference a slot carries."""
    refs: list[tuple[str, str, Any]] = []
    if slot.ttype == "RELATIONSHIP":
        for side in ("from", "to"):
            item = slot.obj.get(side)
            if isinstance(item, dict):
                for key in ITEM_TYPE:
                    if key in item:
                        refs.append((f"{side}/{key}", ITEM_TYPE[key], _item_ref(item, key)))
    elif slot.parent is None:  # nested children get their parent's UID instead
        for key, ttype in PARENT_REFS.get(slot.ttype, ()):
            if slot.obj.get(key) is not None:
                refs.append((key, ttype, slot.obj[key]))
    return refs


async def prepare_uids(body: dict[str, Any], *, source_system: str, uid_map: UidMap | None,
                       strategy: str = "CREATE_AND_UPDATE",
                       source_attribute: str | None = None) -> PreparedTracker:
    """Copy ``body`` into the payload for DHIS2: UIDs assigned, references resolved.

    Problems are returned in ``errors`` (``{"field", "message"}``), all of them, rather than
    raised, so the caller can answer them in one 422.
    """
    payload = {k: copy.deepcopy(v) for k, v in body.items() if k in COLLECTION.values()}
    slots = collect(payload, source_attribute, strip=True)
    errors: list[dict[str, str]] = []

    by_reference: dict[Key, Slot] = {}
    given: dict[Key, Slot] = {}
    for slot in slots:
        if slot.reference is not None:
            key = (slot.ttype, slot.reference)
            if key in by_reference:
                errors.append({"field": f"{slot.path}/reference",
                               "message": f"reference {slot.reference!r} is used by {by_reference[key].path} too"})
            else:
                by_reference[key] = slot
        own = slot.obj.get(ID_KEY[slot.ttype])
        if own:
            if (slot.ttype, own) in given:
                errors.append({"field": f"{slot.path}/{ID_KEY[slot.ttype]}",
                               "message": f"UID {own} is used by {given[(slot.ttype, own)].path} too"})
            given[(slot.ttype, own)] = slot

    # Everything a uid_map could answer: the payload's own references and the outside ones.
    wanted = set(by_reference)
    for slot in slots:
        for _, ttype, value in _references(slot):
            if isinstance(value, str) and (ttype, value) not in by_reference:
                wanted.add((ttype, value))
    known = await uid_map.lookup(source_system, wanted) if uid_map is not None and wanted else {}

    fresh: dict[Key, str] = {}
    for slot in slots:
        own = slot.obj.get(ID_KEY[slot.ttype])
        ref_key = (slot.ttype, slot.reference) if slot.reference is not None else None
        if own:
            slot.uid = own
            if ref_key and ref_key not in known:
                fresh[ref_key] = own
        elif ref_key and ref_key in known:
            slot.uid = known[ref_key]
        elif strategy == "DELETE":
            errors.append({"field": slot.path, "message": "importStrategy DELETE needs the UID of every object "
                                                          "(or a reference the gateway already knows)"})
        else:
            slot.uid = generate_uid()
            if ref_key:
                fresh[ref_key] = slot.uid
    if fresh and uid_map is not None:
        stored = await uid_map.remember(source_system, fresh)
        for key, uid in stored.items():
            referenced = by_reference.get(key)
            # Another ingest mapped this reference first (a race): use its UID, unless the
            # submitter gave a UID explicitly, which always wins for the payload.
            if referenced is not None and uid != referenced.uid and not referenced.obj.get(ID_KEY[referenced.ttype]):
                referenced.uid = uid
        known.update(stored)

    for slot in slots:
        if slot.uid:
            slot.obj[ID_KEY[slot.ttype]] = slot.uid
        _assign_notes(slot.obj)
        parent = slot.parent
        if parent is not None and parent.uid and slot.ttype != "RELATIONSHIP":
            slot.obj[ID_KEY[parent.ttype]] = parent.uid
            if slot.ttype == "EVENT" and parent.obj.get("program") and not slot.obj.get("program"):
                slot.obj["program"] = parent.obj["program"]
        for ref_field, ttype, value in _references(slot):
            resolved = _resolve(ttype, value, by_reference, known)
            if resolved is None:
                errors.append({"field": f"{slot.path}/{ref_field}",
                               "message": f"{value!r} is neither a UID nor a reference known for "
                                          f"{COLLECTION[ttype]} (in this payload or sent before)"})
                continue
            if slot.ttype == "RELATIONSHIP":
                side, item_key = ref_field.split("/")
                _set_item_ref(slot.obj[side], item_key, resolved)
            else:
                slot.obj[ref_field] = resolved

    counts = {COLLECTION[t]: sum(1 for s in slots if s.ttype == t) for t in TYPES}
    return PreparedTracker(payload, _listing(slots, set(given)), counts, errors)


def _listing(slots: list[Slot], given: set[Key]) -> dict[str, dict[str, str]]:
    """{collection: {reference or JSON path: UID}}: objects with a reference or a gateway-made UID."""
    uids: dict[str, dict[str, str]] = {}
    for slot in slots:
        if slot.uid and (slot.reference is not None or (slot.ttype, slot.uid) not in given):
            uids.setdefault(COLLECTION[slot.ttype], {})[slot.reference or slot.path] = slot.uid
    return uids


def uid_listing(body: dict[str, Any], prepared: dict[str, Any],
                source_attribute: str | None = None) -> dict[str, dict[str, str]]:
    """The ``uids`` answer rebuilt from a stored submission (its body and prepared payload).

    Both hold the same objects in the same order (preparing only adds fields), so they pair up.
    """
    originals = collect(body, source_attribute)
    stored = collect(prepared)
    given = {(o.ttype, o.obj[ID_KEY[o.ttype]]) for o in originals if o.obj.get(ID_KEY[o.ttype])}
    for original, slot in zip(originals, stored):
        original.uid = slot.obj.get(ID_KEY[slot.ttype]) or ""
    return _listing(originals, given)


def _resolve(ttype: str, value: Any, by_reference: dict[Key, Slot], known: dict[Key, str]) -> str | None:
    if not isinstance(value, str):
        return None
    slot = by_reference.get((ttype, value))
    if slot is not None and slot.uid:
        return slot.uid
    if (ttype, value) in known:
        return known[(ttype, value)]
    return value if is_valid_uid(value) else None


def _assign_notes(obj: dict[str, Any]) -> None:
    """Notes need UIDs too: a re-sent note without one would be stored twice."""
    for note in obj.get("notes") or []:
        if isinstance(note, dict) and not note.get("note"):
            note["note"] = generate_uid()


def render_relationship_items(payload: dict[str, Any], nested: bool) -> dict[str, Any]:
    """``payload`` with every RelationshipItem in the shape of the destination's version.

    2.36–2.37 take ``{"trackedEntity": "UID"}``; 2.38+ take ``{"trackedEntity": {"trackedEntity": "UID"}}``.
    Returns ``payload`` itself when nothing needs to change.
    """
    relationships = [s.obj for s in collect(payload) if s.ttype == "RELATIONSHIP"]
    if not any(_needs_change(r, nested) for r in relationships):
        return payload
    out = copy.deepcopy(payload)
    for slot in collect(out):
        if slot.ttype != "RELATIONSHIP":
            continue
        for side in ("from", "to"):
            item = slot.obj.get(side)
            if not isinstance(item, dict):
                continue
            for key in [k for k in item if k in ITEM_TYPE]:
                uid = _item_ref(item, key)
                item[key] = {key: uid} if nested else uid
    return out


def _needs_change(rel: dict[str, Any], nested: bool) -> bool:
    for side in ("from", "to"):
        item = rel.get(side)
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ITEM_TYPE and isinstance(value, dict) != nested:
                    return True
    return False
