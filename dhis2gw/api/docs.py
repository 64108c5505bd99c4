"""Documentation for people and tools: ``/openapi.json``, Swagger UI, ``/`` and ``/docs/{page}``.

* ``/openapi.json`` is built from ``router.routes`` at request time (the router is assembled
  after the feature installers ran, so it cannot be read earlier).
* ``/swagger/`` serves Swagger UI from the pip-installed ``swagger_ui_bundle`` package (no CDN),
  with an initializer pointing at ``/openapi.json``; ``/swagger/*any`` serves the bundle's files.
* ``/`` and ``/docs/{page}`` render Markdown from ``server.docs_directory`` inside the HTML
  templates of ``server.templates_directory`` (``index.html``, ``docs.html``, ``not_found.html``;
  ``$name`` placeholders), and ``/static/*`` serves ``server.static_directory``.

Every file is looked up by resolving the requested name under its directory and refusing
anything that resolves outside it, hidden names and non-files, so ``..``, absolute paths,
encoded slashes and symlinks out of the tree all end in a 404. Files are read in the reactor's
thread pool. A page that does not exist answers 404 as HTML to browsers (``Accept: text/html``)
and as the JSON error envelope to everyone else.
"""
from __future__ import annotations

import html
import json
import mimetypes
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThreadPool

from dhis2gw import __version__
from dhis2gw.api.routing import Call, Response, route
from dhis2gw.errors import ApiError
from dhis2gw.operations.openapi import build_document

_PAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PAGE_ORDER = ("overview", "quick-start", "aggregate", "tracker", "mappings", "operations", "scale-out",
              "writing-a-plugin", "upgrade-from-go")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".map": "application/json", ".png": "image/png",
          ".svg": "image/svg+xml", ".ico": "image/x-icon", ".json": "application/json", ".txt": "text/plain"}
HTML = "text/html; charset=utf-8"

SWAGGER_INDEX = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>dhis2gw API — Swagger UI</title>
    <link rel="stylesheet" type="text/css" href="/swagger/swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="/swagger/index.css" />
    <link rel="icon" type="image/png" href="/swagger/favicon-32x32.png" sizes="32x32" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/swagger/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="/swagger/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="/swagger/dhis2gw-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""

SWAGGER_INITIALIZER = """window.onload = function() {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
};
"""


def safe_file(base: Path, relative: str) -> Path | None:
    """``base/relative`` if it is a regular file inside ``base`` (no traversal, no hidden parts)."""
    if not relative or "\x00" in relative or relative.startswith(("/", "\\")):
        return None
    parts = [p for p in re.split(r"[/\\]", relative) if p]
    if not parts or any(p.startswith(".") for p in parts):
        return None
    try:
        root = base.resolve(strict=True)
        target = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def known_files(base: Path, exclude_suffixes: tuple[str, ...] = ()) -> dict[str, Path]:
    """name → path of the regular, non-hidden files directly in ``base`` (read once, at start-up)."""
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return {}
    return {entry.name: entry for entry in entries
            if not entry.name.startswith(".") and entry.suffix.lower() not in exclude_suffixes
            and safe_file(base, entry.name) is not None}


def content_type(path: Path) -> str:
    """The Content-Type of a static file."""
    return _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def wants_html(call: Call) -> bool:
    """True when the client is a browser asking for a page."""
    accept = call.request.getHeader(b"accept") or b""
    accept = accept.decode("latin-1") if isinstance(accept, bytes) else accept
    return "text/html" in accept


class OpenApiArea:
    """``GET /openapi.json`` (unversioned, public)."""

    def __init__(self, routes: Callable[[], list[Any]], title: str = "dhis2gw") -> None:
        self.routes = routes
        self.title = title
        self._cached: tuple[int, bytes] | None = None

    def document(self) -> dict[str, Any]:
        """The current OpenAPI document."""
        return build_document(self.routes(), self.title)

    @route("GET", "/openapi.json", public=True, summary="This API's OpenAPI 3.1 document", tags=("docs",),
           response_schema={"type": "object", "required": ["openapi", "paths"]})
    async def openapi(self, call: Call) -> Response:
        routes = self.routes()
        if self._cached is None or self._cached[0] != len(routes):
            body = json.dumps(build_document(routes, self.title), separators=(",", ":")).encode()
            self._cached = (len(routes), body)
        return Response(raw=self._cached[1], content_type="application/json",
                        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})


class SwaggerArea:
    """Swagger UI, offline (unversioned, public).

    The files served are a fixed set, listed once at start-up: the regular files at the top of
    the bundle directory (source maps left out: browsers do not need them). A request names one
    of them exactly or gets a 404, and the in-memory cache is keyed by those names only, so no
    spelling of a path (``%5C``, ``./``, ``//``…) can add an entry (issue 16, F3: the cache was
    keyed by the raw path and grew by 1.9 MB per spelling).
    """

    def __init__(self, reactor: Any, bundle_dir: str | None = None) -> None:
        self.reactor = reactor
        if bundle_dir is None:
            from swagger_ui_bundle import swagger_ui_path

            bundle_dir = swagger_ui_path
        self.bundle = Path(bundle_dir)
        self.known: dict[str, Path] = known_files(self.bundle, exclude_suffixes=(".map",))
        self._files: dict[str, tuple[bytes, str]] = {}

    async def _read(self, path: Path) -> bytes:
        return await deferToThreadPool(self.reactor, self.reactor.getThreadPool(), path.read_bytes)

    @route("GET", "/swagger/", public=True, summary="Swagger UI", tags=("ui",))
    async def index(self, call: Call) -> Response:
        if not call.request.path.endswith(b"/"):
            return Response(status=301, headers={"Location": "/swagger/"}, raw=b"", content_type="text/plain")
        return Response(raw=SWAGGER_INDEX.encode(), content_type=HTML, headers={"Cache-Control": "no-cache"})

    @route("GET", "/swagger/<path:any>", public=True, summary="Swagger UI files", tags=("ui",))
    async def asset(self, call: Call, any: str) -> Response:  # noqa: A002 - the original's parameter name
        if any in ("index.html", ""):
            return Response(raw=SWAGGER_INDEX.encode(), content_type=HTML)
        if any in ("dhis2gw-initializer.js", "swagger-initializer.js"):
            return Response(raw=SWAGGER_INITIALIZER.encode(), content_type=_TYPES[".js"])
        path = self.known.get(any)
        if path is None:
            raise ApiError(404, "not_found", "no such file")
        cached = self._files.get(any)
        if cached is None:
            cached = self._files[any] = (await self._read(path), content_type(path))
        return Response(raw=cached[0], content_type=cached[1], headers={"Cache-Control": "public, max-age=86400"})


class DocsPages:
    """``/``, ``/docs/{page}`` and ``/static/*`` (unversioned, public)."""

    def __init__(self, reactor: Any, docs_dir: str, templates_dir: str, static_dir: str) -> None:
        self.reactor = reactor
        self.docs = Path(docs_dir)
        self.templates = Path(templates_dir)
        self.static = Path(static_dir)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args)

    # --- blocking helpers (run in the thread pool) ------------------------------------------------
    def _template(self, name: str, fallback: str) -> string.Template:
        path = safe_file(self.templates, name)
        return string.Template(path.read_text(encoding="utf-8") if path is not None else fallback)

    def _pages(self) -> list[tuple[str, str]]:
        """(name, title) of every Markdown page, in reading order."""
        found: dict[str, str] = {}
        try:
            entries = sorted(self.docs.glob("*.md"))
        except OSError:
            return []
        for entry in entries:
            name = entry.stem
            if not _PAGE.match(name) or safe_file(self.docs, entry.name) is None:
                continue
            title = name.replace("-", " ").capitalize()
            try:
                with entry.open(encoding="utf-8") as fh:
                    for line in fh:
                        if line.startswith("# "):
                            title = line[2:].strip()
                            break
            except OSError:
                continue
            found[name] = title
        order = [p for p in PAGE_ORDER if p in found] + sorted(p for p in found if p not in PAGE_ORDER)
        return [(p, found[p]) for p in order]

    def _nav(self, pages: list[tuple[str, str]], current: str | None = None) -> str:
        items = []
        for name, title in pages:
            cls = ' class="current"' if name == current else ""
            items.append(f'<li><a href="/docs/{html.escape(name)}"{cls}>{html.escape(title)}</a></li>')
        return "<ul>" + "".join(items) + "</ul>"

    def _render_page(self, page: str) -> bytes | None:
        import markdown

        path = safe_file(self.docs, f"{page}.md")
        if path is None:
            return None
        text = path.read_text(encoding="utf-8")
        body = markdown.markdown(text, extensions=["tables", "fenced_code", "toc", "sane_lists"])
        pages = self._pages()
        title = dict(pages).get(page, page)
        tpl = self._template("docs.html", "<!DOCTYPE html><html><head><title>$title</title></head>"
                                          "<body><nav>$nav</nav><main>$content</main></body></html>")
        return tpl.safe_substitute(title=html.escape(title), content=body, nav=self._nav(pages, page),
                                   version=__version__, page=html.escape(page)).encode("utf-8")

    def _render_index(self) -> bytes:
        pages = self._pages()
        tpl = self._template("index.html", "<!DOCTYPE html><html><head><title>dhis2gw</title></head>"
                                           "<body><h1>dhis2gw</h1>$nav</body></html>")
        return tpl.safe_substitute(nav=self._nav(pages), version=__version__).encode("utf-8")

    def _render_not_found(self, what: str) -> bytes:
        tpl = self._template("not_found.html", "<!DOCTYPE html><html><head><title>Not found</title></head>"
                                               "<body><h1>Not found</h1><p>$what</p></body></html>")
        return tpl.safe_substitute(what=html.escape(what), nav=self._nav(self._pages()),
                                   version=__version__).encode("utf-8")

    # --- routes -----------------------------------------------------------------------------------
    @route("GET", "/", public=True, summary="Landing page", tags=("ui",))
    async def landing(self, call: Call) -> Response:
        return Response(raw=await self._in_thread(self._render_index), content_type=HTML)

    @route("GET", "/docs", public=True, summary="Redirect to the documentation index", tags=("ui",),
           responses={302: "to /, the documentation index"})
    async def docs_root(self, call: Call) -> Response:
        return Response(status=302, headers={"Location": "/"}, raw=b"", content_type=HTML)

    @route("GET", "/docs/", public=True, summary="Redirect to the documentation index", tags=("ui",),
           responses={302: "to /, the documentation index"})
    async def docs_root_slash(self, call: Call) -> Response:
        return Response(status=302, headers={"Location": "/"}, raw=b"", content_type=HTML)

    @route("GET", "/docs/<page>", public=True, summary="A documentation page", tags=("ui",))
    async def page(self, call: Call, page: str) -> Response:
        name = page[:-3] if page.endswith(".md") else page
        body = await self._in_thread(self._render_page, name) if _PAGE.match(name) else None
        if body is None:
            return await self._not_found(call, "Documentation not found")
        return Response(raw=body, content_type=HTML)

    @route("GET", "/static/<path:path>", public=True, summary="Static files", tags=("ui",))
    async def static_file(self, call: Call, path: str) -> Response:
        target = safe_file(self.static, path)
        if target is None:
            return await self._not_found(call, "File not found")
        raw = await self._in_thread(target.read_bytes)
        return Response(raw=raw, content_type=content_type(target), headers={"Cache-Control": "public, max-age=3600"})

    async def _not_found(self, call: Call, what: str) -> Response:
        if wants_html(call):
            call.request.error_code = "not_found"  # type: ignore[attr-defined]  # as the router sets it
            return Response(raw=await self._in_thread(self._render_not_found, what), status=404, content_type=HTML)
        raise ApiError(404, "not_found", what)
