"""Scratch copies of this checkout and scratch virtual environments for the packaging tests.

A scratch virtualenv sees the packages of the environment running the tests (Twisted, pip, the
build backend …) through one ``.pth`` line per package directory, but never this project: every
installed copy of dhis2gw (a regular install, an editable hook, another checkout on ``sys.path``)
is hidden, so what the scratch environment finds of dhis2gw comes from its own install and
nothing else. Builds run with ``--no-build-isolation`` and ``PIP_NO_INDEX``: no network.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Relative paths, inside a package directory, that belong to an installed dhis2gw.
_PROJECT_FILES = frozenset({"dhis2gw", "twisted/plugins/dhis2gw_plugin.py", "twisted/plugins/dropin.cache"})
_PROJECT_PREFIXES = ("dhis2gw-", "__editable__.dhis2gw-", "__editable___dhis2gw_")


def build_backend_missing() -> str | None:
    """Why this environment cannot build dhis2gw without build isolation, or None when it can.

    ``pyproject.toml`` asks for setuptools >= 69 and wheel; the ``test`` extra installs both.
    """
    try:
        version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return "setuptools is not installed here (pip install -e '.[test]' installs the build backend)"
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (69, 0) or find_spec("wheel") is None:
        return (f"the build backend here (setuptools {version}, wheel "
                f"{'present' if find_spec('wheel') else 'missing'}) is older than pyproject.toml asks for: "
                "pip install -e '.[test]' installs it")
    return None


def copy_checkout(dest: Path) -> Path:
    """Copy the files git knows of (tracked, or new and not ignored) to ``dest``; return it.

    Building from a copy keeps ``build/``, ``*.egg-info`` and ``dropin.cache`` out of the checkout,
    and stale files of an earlier ``build/lib`` out of the wheel.
    """
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would put this checkout on ``sys.path``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")
           and not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


def run(*argv: str | Path, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in :func:`clean_env`; fail with its output when it exits non-zero."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=clean_env(),
                            timeout=timeout, cwd=str(cwd) if cwd else None, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def _site_packages(python: Path) -> Path:
    out = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
    return Path(out.strip())


def _mirror(source: Path, dest: Path, hidden: frozenset[str], prefix: str = "") -> None:
    """Fill ``dest`` with symlinks to the entries of ``source``, leaving out ``hidden`` paths.

    A directory holding a hidden path is recreated (and its entries linked one by one); any other
    entry is one symlink.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        relative = prefix + entry.name
        if relative in hidden or (not prefix and entry.name.startswith(_PROJECT_PREFIXES)):
            continue
        if entry.is_dir() and any(h.startswith(relative + "/") for h in hidden):
            _mirror(entry, dest / entry.name, hidden, relative + "/")
        else:
            (dest / entry.name).symlink_to(entry)


def scratch_venv(base: Path) -> Path:
    """A new virtualenv under ``base`` that sees this environment's packages but not dhis2gw.

    Returns the virtualenv's directory. Its ``python -m pip`` is this environment's pip.
    """
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=clean_env())
    python = venv / "bin" / "python"
    bare = set(json.loads(run(python, "-c", "import json, sys; print(json.dumps(sys.path))").stdout))
    lines: list[str] = []
    seen: set[Path] = set()
    for index, entry in enumerate(sys.path):
        path = Path(entry or ".").resolve()
        # Left out: the new venv's own entries (the standard library), this checkout and anything
        # under it but a virtualenv's packages (``.venv`` of the README's commands lives there),
        # and any other source checkout (/work/main of a compat editable install …).
        inside = ROOT in path.parents and "site-packages" not in path.parts
        if (entry in bare or str(path) in bare or path in seen or not path.is_dir() or path == ROOT
                or inside or (path / "setup.cfg").is_file()):
            continue
        seen.add(path)
        view = base / f"packages-{index}"
        _mirror(path, view, _PROJECT_FILES)
        lines.append(str(view))
    (_site_packages(python) / "scratch-packages.pth").write_text("\n".join(lines) + "\n")
    return venv
