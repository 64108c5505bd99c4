"""A development install (``pip install -e .``, setuptools' default editable mode) gives twistd
the ``dhis2gw`` and ``dhis2sim`` plugins.

twistd finds plugins in ``<each sys.path entry>/twisted/plugins``; setuptools' default editable
mode only puts the checkout on ``sys.path`` (a static ``.pth`` line) when ``package_dir`` says the
checkout root is the package root (``setup.cfg``: ``package_dir = =.``). Without it the install is
an import hook that finds ``dhis2gw`` but never ``twisted/plugins/dhis2gw_plugin.py``.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from twisted.trial.unittest import SynchronousTestCase

from tests.packaging.scratch import build_backend_missing, copy_checkout, run, scratch_venv

# twistd as its console script starts it, run by the scratch venv's interpreter.
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; sys.exit(run())"

pytestmark = [pytest.mark.skipif(build_backend_missing() is not None, reason=str(build_backend_missing())),
              pytest.mark.timeout(180)]


class EditableInstallTests(SynchronousTestCase):
    """``pip install -e <checkout>`` in a new virtualenv, default editable mode."""

    def test_twistd_lists_the_plugins(self) -> None:
        """twistd --help lists dhis2gw and dhis2sim, found through a static .pth entry for the checkout."""
        base = Path(tempfile.mkdtemp(prefix="dhis2gw-editable-"))
        self.addCleanup(shutil.rmtree, base, True)
        checkout = copy_checkout(base / "checkout")
        venv = scratch_venv(base)
        python = venv / "bin" / "python"
        # Nothing of dhis2gw is visible before the install.
        before = run(python, "-c", TWISTD, "--help", cwd=base).stdout
        self.assertNotIn("dhis2gw", before)

        run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", checkout, timeout=150)

        site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
        self.assertEqual(list(site.glob("__editable___dhis2gw_*finder.py")), [], "no import-hook finder")
        (pth,) = site.glob("__editable__.dhis2gw-*.pth")
        self.assertEqual([Path(p).resolve() for p in pth.read_text().split()], [checkout.resolve()])

        where = run(python, "-c", "import dhis2gw; print(dhis2gw.__file__)", cwd=base).stdout.strip()
        self.assertEqual(Path(where).resolve(), (checkout / "dhis2gw" / "__init__.py").resolve())
        commands = _commands(run(python, "-c", TWISTD, "--help", cwd=base).stdout)
        self.assertIn("dhis2gw", commands)
        self.assertIn("dhis2sim", commands)


def _commands(usage: str) -> list[str]:
    """The subcommand names of twistd's ``--help`` ("Commands:" section, one per line)."""
    lines = usage.split("Commands:", 1)[1].splitlines()
    return [line.split()[0] for line in lines if line.startswith("    ") and line.split()]

