"""DHIS2 metadata query language: ``fields=`` selection, ``filter=`` and paging."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from dhis2gw.sim.metadata import Metadata, Ref

FieldTree = dict[str, "FieldTree | None"]
ALL_PRESETS = {"*", ":all", ":owner", ":identifiable", ":nameable", ":persisted"}


def parse_fields(text: str) -> FieldTree:
    """Parse ``id,name,parent[id,code],dataSetElements[dataElement[id]]`` into a tree.

    ``None`` leaves mean "the value as is" (references become ``{"id": …}``); ``!x`` entries are
    stored under the key ``"!x"`` and exclude *x* from presets.
    """
    tree, _ = _parse(text.replace(" ", ""), 0)
    return tree


def _parse(text: str, pos: int) -> tuple[FieldTree, int]:
    tree: FieldTree = {}
    name = ""
    while pos < len(text):
        ch = text[pos]
        if ch in "[(":
            sub, pos = _parse(text, pos + 1)
            if name:
                tree[name] = sub
            name = ""
            continue
        if ch in "])":
            if name:
                tree[name] = None
            return tree, pos + 1
        if ch == ",":
            if name:
                tree[name] = None
            name = ""
        else:
            name += ch
        pos += 1
    if name:
        tree[name] = None
    return tree, pos


class Selector:
    """Applies a field tree to metadata objects, following :class:`Ref` values."""

    def __init__(self, metadata: Metadata) -> None:
        """Keep the metadata used to resolve references."""
        self.metadata = metadata

    def select(self, obj: dict[str, Any], tree: FieldTree | None) -> dict[str, Any]:
        """The projection of a full object (see :meth:`Metadata.full`) on *tree*."""
        if not tree:
            tree = {"*": None}
        keys: list[str] = []
        excluded = {k[1:] for k in tree if k.startswith("!")}
        for key in tree:
            if key in ALL_PRESETS:
                keys.extend(k for k in obj if k not in keys)
            elif not key.startswith("!") and key not in keys:
                keys.append(key)
        out: dict[str, Any] = {}
        for key in keys:
            if key in excluded or key in ALL_PRESETS:
                continue
            if key not in obj:
                continue
            out[key] = self._value(obj[key], tree.get(key))
        return out

    def _value(self, value: Any, sub: FieldTree | None) -> Any:
        if isinstance(value, Ref):
            if not sub or set(sub) == {"id"}:
                return {"id": value.uid}
            if value.uid not in self.metadata.objects[value.kind]:
                return {"id": value.uid}
            return self.select(self.metadata.full(value.kind, value.uid), sub)
        if isinstance(value, list):
            return [self._value(v, sub) for v in value]
        if isinstance(value, dict):
            return self.select(value, sub) if sub else {k: self._value(v, None) for k, v in value.items()}
        return value


def _resolve_path(metadata: Metadata, obj: dict[str, Any], path: list[str]) -> list[Any]:
    """All values reached by a dotted property path (lists fan out)."""
    values: list[Any] = [obj]
    for part in path:
        nxt: list[Any] = []
        for v in values:
            if isinstance(v, Ref):
                v = metadata.full(v.kind, v.uid) if v.uid in metadata.objects[v.kind] else {"id": v.uid}
            if isinstance(v, dict) and part in v:
                item = v[part]
                nxt.extend(item if isinstance(item, list) else [item])
        values = nxt
    return [v.uid if isinstance(v, Ref) else v for v in values]


def _match(op: str, actual: Any, expected: str) -> bool:
    if op == "null":
        return actual is None
    if op == "!null":
        return actual is not None
    if op == "empty":
        return actual in ([], "", None)
    if actual is None:
        return op in ("!eq", "ne", "!like", "!ilike", "!in")
    a = str(actual).lower() if isinstance(actual, bool) else str(actual)
    if op == "eq":
        return a == expected
    if op in ("!eq", "ne", "neq"):
        return a != expected
    if op == "ieq":
        return a.lower() == expected.lower()
    if op == "like":
        return expected in a
    if op == "!like":
        return expected not in a
    if op == "ilike":
        return expected.lower() in a.lower()
    if op == "!ilike":
        return expected.lower() not in a.lower()
    if op == "$like":
        return a.startswith(expected)
    if op == "like$":
        return a.endswith(expected)
    if op == "$ilike":
        return a.lower().startswith(expected.lower())
    if op == "ilike$":
        return a.lower().endswith(expected.lower())
    if op in ("in", "!in"):
        items = [x.strip() for x in expected.strip("[]").split(",")]
        return (a in items) == (op == "in")
    if op in ("gt", "ge", "lt", "le"):
        try:
            left, right = float(a), float(expected)
        except ValueError:
            return _ordered(op, a, expected)  # ISO dates compare as strings
        return _ordered(op, left, right)
    raise ValueError(f"unsupported filter operator {op}")


_Ordered = TypeVar("_Ordered", float, str)


def _ordered(op: str, left: _Ordered, right: _Ordered) -> bool:
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]


def make_filter(metadata: Metadata, filters: list[str], junction: str = "AND") -> Callable[[dict[str, Any]], bool]:
    """A predicate over full objects for DHIS2 ``filter=prop:op:value`` strings."""
    parsed = []
    for f in filters:
        parts = f.split(":", 2)
        if len(parts) == 2:
            parts.append("")
        if len(parts) != 3:
            raise ValueError(f"bad filter {f!r}")
        parsed.append((parts[0].split("."), parts[1], parts[2]))

    def pred(obj: dict[str, Any]) -> bool:
        results = []
        for path, op, expected in parsed:
            values = _resolve_path(metadata, obj, path)
            if op in ("null", "empty"):
                ok = not values or all(_match(op, v, expected) for v in values)
            elif op.startswith("!") or op in ("ne", "neq"):
                ok = all(_match(op, v, expected) for v in values) if values else True
            else:
                ok = any(_match(op, v, expected) for v in values)
            results.append(ok)
        return any(results) if junction.upper() == "OR" else all(results)

    return pred


def page_of(items: list[Any], page: int, page_size: int, base_url: str,
            query: dict[str, list[str]]) -> tuple[list[Any], dict[str, Any]]:
    """Slice *items* and build a DHIS2 ``pager`` with absolute next/prev URLs."""
    total = len(items)
    page_count = max(1, -(-total // page_size)) if total else 1
    pager: dict[str, Any] = {"page": page, "pageCount": page_count, "total": total, "pageSize": page_size}

    def url(p: int) -> str:
        q = [(k, v) for k, vs in query.items() if k != "page" for v in vs]
        q.insert(0, ("page", str(p)))
        return base_url + "?" + urlencode(q)

    if page < page_count:
        pager["nextPage"] = url(page + 1)
    if page > 1:
        pager["prevPage"] = url(page - 1)
    start = (page - 1) * page_size
    return items[start:start + page_size], pager
