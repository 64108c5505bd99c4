"""Metadata endpoints: lists with fields/filter/paging, single objects, org-unit writes."""
from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Callable
from typing import Any

from dhis2gw.sim.context import RequestContext
from dhis2gw.sim.fields import Selector, make_filter, page_of, parse_fields
from dhis2gw.sim.metadata import COLLECTIONS, Metadata
from dhis2gw.sim.store import Store
from dhis2gw.sim.uids import is_uid
from dhis2gw.sim.versions import Version
from dhis2gw.sim.webmessage import SimResponse, error, web_message

OU_KLASS = "org.hisp.dhis.organisationunit.OrganisationUnit"
OU_WRITABLE = ("code", "name", "shortName", "openingDate", "closedDate", "description", "comment", "url",
               "contactPerson", "address", "email", "phoneNumber", "geometry")
LISTABLE = tuple(k for k in COLLECTIONS if k != "users")


class MetadataApi:
    """Handlers for ``/api/<collection>`` reads and org-unit writes."""

    def __init__(self, metadata: Callable[[], Metadata], store: Store, version: Callable[[], Version],
                 now: Callable[[], dt.datetime], new_id: Callable[[], str]) -> None:
        """Collaborators are read through callables so a simulator reset swaps them."""
        self._metadata, self.store, self._version, self.now, self.new_id = metadata, store, version, now, new_id

    @property
    def md(self) -> Metadata:
        """Current metadata."""
        return self._metadata()

    def _stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%S.000")

    # -- reads ---------------------------------------------------------------------
    def list(self, ctx: RequestContext, kind: str) -> SimResponse:
        """``GET /api/<kind>`` with DHIS2 list semantics."""
        md = self.md
        try:
            pred = make_filter(md, ctx.args("filter"), ctx.arg("rootJunction", "AND") or "AND")
        except ValueError as e:
            return error(400, str(e))
        items = [md.full(kind, uid) for uid in md.objects[kind]]
        items = [o for o in items if pred(o)]
        if ctx.arg("level") and kind == "organisationUnits":
            items = [o for o in items if str(o.get("level")) == ctx.arg("level")]
        order = ctx.arg("order") or "name:asc"
        prop, _, direction = order.partition(":")
        items.sort(key=lambda o: (o.get(prop) is None, str(o.get(prop, "")) if not isinstance(o.get(prop), int)
                                  else f"{o.get(prop):012d}"), reverse=direction.lower() == "desc")
        tree = parse_fields(ctx.arg("fields") or "id,displayName")
        selector = Selector(md)
        out: dict[str, Any] = {}
        if (ctx.arg("paging") or "true").lower() != "false":
            try:
                page = max(1, int(ctx.arg("page") or 1))
                size = max(1, int(ctx.arg("pageSize") or 50))
            except ValueError:
                return error(400, "page and pageSize must be numbers")
            api_url = ctx.api_url
            if ctx.headers.get("x-forwarded-proto") == "https":
                api_url = "https://" + api_url.split("://", 1)[1]
            gist = self._version().gist_lists and _plain_fields(ctx.arg("fields"))
            if gist:  # Gist builds its links from the servlet request: http:// even behind TLS (#136)
                api_url = "http://" + api_url.split("://", 1)[1]
            items, pager = page_of(items, page, size, f"{api_url}/{kind}", ctx.query)
            if gist:
                pager = {k: pager[k] for k in ("page", "pageSize", "total", "pageCount", "prevPage", "nextPage")
                         if k in pager}
            out["pager"] = pager
        out[kind] = [selector.select(o, tree) for o in items]
        if self._version().gist_lists and _plain_fields(ctx.arg("fields")):
            out["gist"] = True
        return SimResponse.json(200, out)

    def get(self, ctx: RequestContext, kind: str, uid: str) -> SimResponse:
        """``GET /api/<kind>/<uid>`` (org units also with includeChildren/includeDescendants/includeAncestors)."""
        md = self.md
        if uid not in md.objects[kind]:
            return error(404, f"{_klass_name(kind)} with id {uid} could not be found.")
        tree = parse_fields(ctx.arg("fields") or ":all")
        selector = Selector(md)
        if kind == "organisationUnits":
            ids = None
            if (ctx.arg("includeChildren") or "").lower() == "true":
                ids = [uid] + md.objects[kind][uid]["children"]
            elif (ctx.arg("includeDescendants") or "").lower() == "true":
                ids = list(md.org_unit_descendants(uid))
            elif (ctx.arg("includeAncestors") or "").lower() == "true":
                ids = md.objects[kind][uid]["ancestors"] + [uid]
            if ids is not None:
                return SimResponse.json(200, {kind: [selector.select(md.full(kind, i), tree) for i in ids]})
        return SimResponse.json(200, selector.select(md.full(kind, uid), tree))

    # -- org-unit writes -------------------------------------------------------------
    def _ou_errors(self, body: dict[str, Any], uid: str) -> builtins.list[dict[str, Any]]:
        md = self.md
        errors = []
        for prop in ("name", "shortName", "openingDate"):
            if not body.get(prop):
                errors.append({"message": f"Missing required property `{prop}`", "mainKlass": OU_KLASS,
                               "errorCode": "E4000", "errorProperty": prop, "errorProperties": [prop]})
        for prop, limit in (("name", 230), ("shortName", 50), ("code", 50)):
            if isinstance(body.get(prop), str) and len(body[prop]) > limit:
                errors.append({"message": f"Maximum length of property `{prop}`is {limit}, but given length was "
                                          f"{len(body[prop])}", "mainKlass": OU_KLASS, "errorCode": "E4001",
                               "errorProperty": prop, "errorProperties": [prop, str(limit), str(len(body[prop]))]})
        code = body.get("code")
        if code:
            other = md.lookup("organisationUnits", code, "CODE")
            if other and other["id"] != uid:
                errors.append({"message": f"Property `code` with value `{code}` on object {body.get('name')} [{uid}] "
                                          f"(OrganisationUnit) already exists on object {other['id']}",
                               "mainKlass": OU_KLASS, "errorCode": "E5003", "errorProperty": "code",
                               "errorProperties": ["code", code, f"{body.get('name')} [{uid}] (OrganisationUnit)",
                                                   other["id"]]})
        parent = (body.get("parent") or {}).get("id") if isinstance(body.get("parent"), dict) else None
        if parent and parent not in md.objects["organisationUnits"]:
            errors.append({"message": f"Invalid reference [{parent}] (OrganisationUnit) on object "
                                      f"{body.get('name')} [{uid}] (OrganisationUnit) for association `parent`",
                           "mainKlass": OU_KLASS, "errorCode": "E5002", "errorProperty": "parent",
                           "errorProperties": [parent, "OrganisationUnit", "parent"]})
        return errors

    def _report(self, status: int, uid: str | None, errors: builtins.list[dict[str, Any]]) -> SimResponse:
        response = {"responseType": "ObjectReport", **({"uid": uid} if uid and not errors else {}),
                    "klass": OU_KLASS, "errorReports": errors}
        if errors:
            body = web_message(409, "One or more errors occurred, please see full details in import report.",
                               "WARNING", response=response)
            return SimResponse.json(409, body)
        return SimResponse.json(status, web_message(status, None, "OK", response=response))

    def _save_ou(self, uid: str, body: dict[str, Any], existing: dict[str, Any] | None) -> None:
        md = self.md
        ou = {"id": uid, **{k: body.get(k) for k in OU_WRITABLE if body.get(k) is not None}}
        ou["parent"] = (body.get("parent") or {}).get("id") if isinstance(body.get("parent"), dict) else None
        ou["lastUpdated"] = self._stamp()
        ou["created"] = existing.get("created") if existing else ou["lastUpdated"]
        md.objects["organisationUnits"][uid] = ou
        md.retree()
        self.store.org_units[uid] = {k: v for k, v in md.objects["organisationUnits"][uid].items()}
        self.store.write_counts[uid] += 1

    def create_org_unit(self, ctx: RequestContext) -> SimResponse:
        """``POST /api/organisationUnits``: 201 ObjectReport (client id kept) or 409 errors."""
        body = _json_object(ctx)
        if isinstance(body, SimResponse):
            return body
        uid = body.get("id") or self.new_id()
        if not is_uid(uid):
            return self._report(409, uid, [{"message": f"Invalid UID `{uid}` for property `id`",
                                            "mainKlass": OU_KLASS, "errorCode": "E4014", "errorProperty": "id",
                                            "errorProperties": [uid, "id"]}])
        errors = self._ou_errors(body, uid)
        if uid in self.md.objects["organisationUnits"]:
            errors.append({"message": f"Property `id` with value `{uid}` on object {body.get('name')} [{uid}] "
                                      f"(OrganisationUnit) already exists on object {uid}",
                           "mainKlass": OU_KLASS, "errorCode": "E5003", "errorProperty": "id",
                           "errorProperties": ["id", uid]})
        if errors:
            return self._report(409, uid, errors)
        self._save_ou(uid, body, None)
        response = self._report(201, uid, [])
        if self._version().minor >= 38:
            response.headers["Location"] = f"{ctx.api_url}/organisationUnits/{uid}"
        return response

    def update_org_unit(self, ctx: RequestContext, uid: str) -> SimResponse:
        """``PUT /api/organisationUnits/{id}`` (full replace)."""
        existing = self.md.objects["organisationUnits"].get(uid)
        if not existing:
            return error(404, f"OrganisationUnit with id {uid} could not be found.")
        body = _json_object(ctx)
        if isinstance(body, SimResponse):
            return body
        errors = self._ou_errors(body, uid)
        if errors:
            return self._report(409, uid, errors)
        self._save_ou(uid, body, existing)
        return self._report(200, uid, [])

    def group_member(self, ctx: RequestContext, group: str, ou: str, add: bool) -> SimResponse:
        """``POST|DELETE /api/organisationUnitGroups/{g}/organisationUnits/{ou}``."""
        md = self.md
        g = md.objects["organisationUnitGroups"].get(group)
        if not g:
            return error(404, f"OrganisationUnitGroup with id {group} could not be found.")
        if ou not in md.objects["organisationUnits"]:
            return error(404, f"OrganisationUnit with id {ou} could not be found.")
        changed = (ou not in g["organisationUnits"]) if add else (ou in g["organisationUnits"])
        if add and changed:
            g["organisationUnits"].append(ou)
        elif not add and changed:
            g["organisationUnits"].remove(ou)
        g["lastUpdated"] = self._stamp()
        md.reindex()
        self.store.write_counts[(group, ou)] += 1
        if not self._version().collection_type_report:
            return SimResponse(204)
        return SimResponse.json(200, web_message(200, None, "OK", response={
            "responseType": "TypeReport", "klass": "org.hisp.dhis.organisationunit.OrganisationUnitGroup",
            "stats": {"created": 0, "updated": 1, "deleted": 0, "ignored": 0, "total": 1}, "objectReports": []}))


def _json_object(ctx: RequestContext) -> dict[str, Any] | SimResponse:
    """The request's JSON object, or the 400 DHIS2 answers when the body is not one."""
    try:
        body = ctx.json()
    except ValueError as e:
        return error(400, f"JSON parse error: {e}")
    if not isinstance(body, dict):
        return error(400, "JSON parse error: expected an object")
    return body


def _plain_fields(fields: str | None) -> bool:
    """2.44 routes a list read to Gist when ``fields=`` names plain properties (no ``*``, no ``:preset``)."""
    return bool(fields) and "*" not in str(fields) and ":" not in str(fields)


def _klass_name(kind: str) -> str:
    names = {"categories": "Category", "categoryOptionCombos": "CategoryOptionCombo"}
    return names.get(kind, kind[0].upper() + kind[1:-1])
