"""The wheel (what ``pip install .`` and the Debian package install) carries exactly the files the
code needs: every data file a module loads by package-relative path, the twistd plugin file, and
nothing that would shadow Twisted's own ``twisted`` or ``twisted.plugins`` packages.

Package-relative loads are found in the source, not listed by hand: ``importlib.resources.files(
"pkg").joinpath("name")`` (or ``/ "name"``), ``pkgutil.get_data("pkg", "name")`` and paths built
from ``Path(__file__)``.
"""
from __future__ import annotations

import ast
import configparser
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from twisted.trial.unittest import SynchronousTestCase

from tests.packaging.scratch import ROOT, build_backend_missing, copy_checkout, run

# Paths built from a module's __file__ that lead out of the package into the checkout, on purpose.
CHECKOUT_ONLY = {
    # The development configuration (--dev) exists in a checkout only.
    ("dhis2gw/config/__init__.py", "conf/dev.yml"),
}
PACKAGE_ROOTS = ("dhis2gw", "twisted/plugins")

pytestmark = [pytest.mark.skipif(build_backend_missing() is not None, reason=str(build_backend_missing())),
              pytest.mark.timeout(180)]


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_call_to(node: ast.AST, name: str) -> bool:
    """``name(...)`` or ``something.name(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == name) or (isinstance(func, ast.Attribute) and func.attr == name)


def _file_path(node: ast.AST, module: PurePosixPath) -> PurePosixPath | None:
    """The path (relative to the checkout) an expression rooted at ``Path(__file__)`` names, if static."""
    if _is_call_to(node, "Path") and isinstance(node, ast.Call) and len(node.args) == 1 \
            and isinstance(node.args[0], ast.Name) and node.args[0].id == "__file__":
        return module
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "resolve":
        return _file_path(node.func.value, module)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _file_path(node.value, module)
        return inner.parent if inner is not None else None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents" \
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
        inner = _file_path(node.value.value, module)
        return inner.parents[node.slice.value] if inner is not None else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _string(node.right) is not None:
        inner = _file_path(node.left, module)
        return inner / _string(node.right) if inner is not None else None  # type: ignore[operator]
    return None


def package_relative_loads() -> tuple[set[str], set[tuple[str, str]]]:
    """(files inside the packages, (module, file) pairs outside them) that modules name by location."""
    inside: set[str] = set()
    outside: set[tuple[str, str]] = set()
    for root in PACKAGE_ROOTS:
        for source in sorted((ROOT / root).rglob("*.py")):
            module = PurePosixPath(source.relative_to(ROOT).as_posix())
            tree = ast.parse(source.read_text(encoding="utf-8"))
            # In a / "b" / "c", only the whole expression names a file: skip its left operands.
            operands = {id(n.left) for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)}
            for node in ast.walk(tree):
                if id(node) in operands:
                    continue
                named: PurePosixPath | None = None
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr == "joinpath" and _is_call_to(node.func.value, "files"):
                    package = _string(node.func.value.args[0])  # type: ignore[attr-defined]
                    parts = [_string(a) for a in node.args]
                    if package is not None and None not in parts:
                        named = PurePosixPath(*package.split("."), *parts)  # type: ignore[arg-type]
                elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _is_call_to(node.left, "files") \
                        and _string(node.right) is not None:
                    package = _string(node.left.args[0])  # type: ignore[attr-defined]
                    if package is not None:
                        named = PurePosixPath(*package.split("."), _string(node.right))  # type: ignore[arg-type]
                elif _is_call_to(node, "get_data") and len(node.args) == 2:  # type: ignore[attr-defined]
                    package, name = (_string(a) for a in node.args)  # type: ignore[attr-defined]
                    if package is not None and name is not None:
                        named = PurePosixPath(*package.split(".")).joinpath(name)
                elif isinstance(node, ast.BinOp):
                    named = _file_path(node, module)
                if named is None or named.suffix == ".py":
                    continue
                if any(named.is_relative_to(r) for r in PACKAGE_ROOTS):
                    inside.add(named.as_posix())
                else:
                    outside.add((module.as_posix(), named.as_posix()))
    return inside, outside


def package_data_globs() -> list[tuple[str, str]]:
    """(package directory, glob) for every pattern of setup.cfg's ``[options.package_data]``."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    found = []
    for package, value in cfg.items("options.package_data"):
        directory = "" if package in ("", "*") else package.replace(".", "/")
        found += [(directory, p.strip()) for p in value.replace("\n", ",").split(",") if p.strip()]
    return found


class WheelContentsTests(SynchronousTestCase):
    """``pip wheel --no-deps --no-build-isolation`` of a copy of the checkout."""

    names: frozenset[str]  # the wheel's member names

    @classmethod
    def setUpClass(cls) -> None:
        base = Path(tempfile.mkdtemp(prefix="dhis2gw-wheel-"))
        cls.addClassCleanup(shutil.rmtree, base, True)
        checkout = copy_checkout(base / "checkout")
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", base / "dist", checkout,
            timeout=150)
        (wheel,) = (base / "dist").glob("dhis2gw-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            cls.names = frozenset(archive.namelist())

    def test_package_relative_loads_are_in_the_wheel(self) -> None:
        """Every file a module loads by package-relative path is in the wheel (country.yml at least)."""
        inside, _ = package_relative_loads()
        self.assertIn("dhis2gw/sim/country.yml", inside, "the scan finds the known load")
        self.assertEqual(sorted(inside - self.names), [])

    def test_loads_outside_the_packages_are_checkout_only(self) -> None:
        """A module reaching out of its package by ``__file__`` does so only for the listed checkout files."""
        _, outside = package_relative_loads()
        self.assertEqual(outside, CHECKOUT_ONLY)

    def test_every_package_data_glob_matches(self) -> None:
        """Each ``[options.package_data]`` pattern matches at least one file, and each match is shipped."""
        globs = package_data_globs()
        self.assertNotEqual(globs, [])
        for directory, pattern in globs:
            matches = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / directory).glob(pattern) if p.is_file())
            self.assertNotEqual(matches, [], f"package_data {directory or '*'}: {pattern} matches no file")
            self.assertEqual([m for m in matches if m not in self.names], [])

    def test_no_unshipped_data_files_in_the_packages(self) -> None:
        """Every file of the package directories (that git knows of) is in the wheel: nothing forgotten."""
        listed = run("git", "-C", ROOT, "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGE_ROOTS)
        tracked = {n for n in listed.stdout.splitlines() if (ROOT / n).is_file()}
        self.assertEqual(sorted(tracked - self.names), [])

    def test_twistd_plugin_without_shadowing_twisted(self) -> None:
        """The plugin module is shipped; ``twisted/__init__.py`` and ``twisted/plugins/__init__.py`` are not."""
        self.assertIn("twisted/plugins/dhis2gw_plugin.py", self.names)
        self.assertEqual(sorted(n for n in self.names if n.startswith("twisted/")),
                         ["twisted/plugins/dhis2gw_plugin.py"])
        self.assertEqual([n for n in self.names if "__pycache__" in n or n.endswith((".pyc", "dropin.cache"))], [])
