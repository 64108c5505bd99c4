"""Admin app tests: make the main repository's ``tests.support`` importable.

Run in their own pytest processes (the UI tests need Kivy's reactor installed first; see
stack-notes pitfall 8):  ``.venv/bin/pytest admin/tests/vm -q`` and ``.venv/bin/pytest admin/tests/ui -q``.
No ``__init__.py`` here on purpose: this directory must not shadow the main ``tests`` package.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "admin") not in sys.path:  # dhis2gw_admin without installing it (appended: never shadows tests/)
    sys.path.append(str(ROOT / "admin"))

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: "object") -> bool | None:
    """Collect ``ui/`` only when it is named on the command line: it installs Kivy's reactor at
    import, which must never happen in the process running the trial-style view-model tests."""
    if collection_path.resolve() != HERE / "ui":
        return None
    asked = [Path(str(a).split("::")[0]).resolve() for a in getattr(config, "args", [])]
    return not any(a == HERE / "ui" or HERE / "ui" in a.parents for a in asked)
