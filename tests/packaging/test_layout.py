"""The product tree's layout rules, read from the source (nothing is imported or run):

* only the composition roots touch the global reactor; every other module gets the reactor or
  clock it needs from its caller (STYLE.md, "Time and dependencies");
* no module is longer than ``MAX_LINES`` lines;
* no import cycle: neither between modules nor between rooms (the packages of ``dhis2gw``), type-only
  imports (``if TYPE_CHECKING:``) aside — the domain rooms never import ``dhis2gw.api``.
"""
from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parents[2]

#: The modules allowed to import the global reactor: the composition root's entry module (what the
#: twistd plugins run: twistd_service, simulator_service) and the console script.
GLOBAL_REACTOR_ALLOWED = frozenset({
    "dhis2gw/wiring/entry.py",
    "dhis2gw/wiring/simulator.py",  # the simulator's own twistd entry point
    "dhis2gw/cli.py",
})
#: Where product code lives (twisted/plugins holds the twistd plugin module).
PRODUCT_DIRS = ("dhis2gw", "plugins", "twisted/plugins")
MAX_LINES = 400

_REACTOR_MODULE = "twisted.internet.reactor"


def product_modules(*dirs: str) -> list[Path]:
    """Every ``.py`` file under ``dirs`` (relative to the checkout), sorted."""
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def global_reactor_uses(source: str) -> list[int]:
    """Line numbers where ``source`` reaches the global reactor.

    Counted: ``from twisted.internet import reactor`` (any alias), ``import twisted.internet.reactor``,
    ``from twisted.internet.reactor import …``, attribute access ``….internet.reactor`` (after
    ``import twisted.internet`` or ``from twisted import internet``), and
    ``importlib.import_module`` / ``__import__`` / ``sys.modules[…]`` of ``"twisted.internet.reactor"``.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.module == "twisted.internet" and any(a.name == "reactor" for a in node.names):
                lines.append(node.lineno)
            elif node.module == _REACTOR_MODULE:
                lines.append(node.lineno)
        elif isinstance(node, ast.Import):
            if any(a.name == _REACTOR_MODULE for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "reactor":
            dotted = _dotted(node)
            if dotted is not None and (dotted == _REACTOR_MODULE or dotted.endswith("internet.reactor")):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value == _REACTOR_MODULE
                                                for a in node.args):
            name = _dotted(node.func) or ""
            if name.split(".")[-1] in ("import_module", "__import__"):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and _dotted(node.value) == "sys.modules" \
                and isinstance(node.slice, ast.Constant) and node.slice.value == _REACTOR_MODULE:
            lines.append(node.lineno)
    return sorted(set(lines))


class GlobalReactorTests(SynchronousTestCase):
    """Only the allow-listed composition roots reach the global reactor."""

    def test_detector(self) -> None:
        """Each way of reaching the global reactor is found; a reactor parameter is not."""
        for source in ("from twisted.internet import reactor",
                       "from twisted.internet import defer, reactor as r",
                       "import twisted.internet.reactor",
                       "from twisted.internet.reactor import callLater",
                       "import twisted.internet\ntwisted.internet.reactor.callLater(1, f)",
                       "from twisted import internet\ninternet.reactor.stop()",
                       "import importlib\nimportlib.import_module('twisted.internet.reactor')",
                       "__import__('twisted.internet.reactor')",
                       "import sys\nsys.modules['twisted.internet.reactor']"):
            self.assertNotEqual(global_reactor_uses(source), [], source)
        self.assertEqual(global_reactor_uses(
            "def f(reactor):\n    reactor.callLater(1, f)\n    self.reactor.stop()\n"
            "'twisted.internet.reactor' in sys.modules"), [])

    def test_only_allowed_modules_import_the_global_reactor(self) -> None:
        """No product module outside GLOBAL_REACTOR_ALLOWED reaches the global reactor."""
        found = {}
        for path in product_modules(*PRODUCT_DIRS):
            name = path.relative_to(ROOT).as_posix()
            if name in GLOBAL_REACTOR_ALLOWED:
                continue
            uses = global_reactor_uses(path.read_text(encoding="utf-8"))
            if uses:
                found[name] = uses
        self.assertEqual(found, {}, "these modules should take the reactor from their caller")


class ModuleSizeTests(SynchronousTestCase):
    """Modules stay small enough to read in one sitting."""

    def test_no_module_over_the_limit(self) -> None:
        """No .py file under dhis2gw/ or plugins/ has more than MAX_LINES lines."""
        long = {p.relative_to(ROOT).as_posix(): n for p in product_modules("dhis2gw", "plugins")
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
        self.assertEqual(long, {})


def import_graph() -> dict[str, set[str]]:
    """``module → the dhis2gw modules it imports`` at run time (function-level imports included)."""
    modules = {}
    for path in product_modules("dhis2gw"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = {id(node) for branch in ast.walk(tree)
                     if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
                     for node in ast.walk(branch)}
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dhis2gw"):
                submodules = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                graph[name] |= submodules or ({node.module} & modules.keys())
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names} & modules.keys()
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class ImportCycleTests(SynchronousTestCase):
    """Modules and rooms import each other in one direction only."""

    def test_no_module_cycle(self) -> None:
        self.assertEqual(cycles(import_graph()), [])

    def test_no_room_cycle(self) -> None:
        """Rooms: the second component of the module name (``api``, ``auth``, ``wiring``…)."""
        def room(module: str) -> str:
            return module.split(".")[1] if "." in module else module

        rooms: dict[str, set[str]] = {}
        for module, imported in import_graph().items():
            rooms.setdefault(room(module), set()).update(room(i) for i in imported if room(i) != room(module))
        self.assertEqual(cycles(rooms), [])

    def test_detector(self) -> None:
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])
