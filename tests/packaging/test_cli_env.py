"""The environment file read one way (systemd's ``KEY=value`` syntax) by the CLI and the maintainer
scripts, one version source, and one-line errors instead of tracebacks. These run without the
Debian build tools: they exercise the same ``dhis2gw`` entry point the package's wrapper calls.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw import __version__
from dhis2gw.config import envfile
from tests.support.services import ROOT

DHIS2GW = str(Path(sys.executable).parent / "dhis2gw")


def _env(**extra: str) -> dict[str, str]:
    """A clean environment (no DHIS2GW_* of the caller's shell) that still finds this checkout."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT)), "HOME": tempfile.gettempdir()}
    env.update(extra)
    return env


def _run(*argv: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DHIS2GW, *argv], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=120,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


class EnvFileSyntaxTests(SynchronousTestCase):
    """``dhis2gw.config.envfile.parse`` follows systemd's EnvironmentFile= rules, not the shell's."""

    def test_systemd_rules(self) -> None:
        """Comments, blanks, quotes, escapes, continuations, surrounding spaces; no $ expansion."""
        text = (
            "# a comment\n"
            "; another comment\n"
            "\n"
            "PLAIN=value\n"
            "SPACED =  two words  \n"
            "DOLLARS=pa$$word$HOME\n"
            "SINGLE='it''s $HOME'\n"
            'DOUBLE="a \\"quoted\\" \\$HOME and \\n kept"\n'
            "ESCAPED=a\\ b\n"
            "CONTINUED=one \\\n"
            "two\n"
            "export NOT_A_NAME=x\n"
            "no equals sign\n"
            "INLINE=a # not a comment\n"
            "EMPTY=\n"
            "PLAIN=later wins\n")
        self.assertEqual(envfile.parse(text), {
            "PLAIN": "later wins", "SPACED": "two words", "DOLLARS": "pa$$word$HOME", "SINGLE": "its $HOME",
            "DOUBLE": 'a "quoted" $HOME and \\n kept', "ESCAPED": "a b", "CONTINUED": "one two",
            "INLINE": "a # not a comment", "EMPTY": ""})

    def test_shipped_file_parses(self) -> None:
        """The package's /etc/default/dhis2gw sets only DHIS2GW_MIGRATE_ON_INSTALL (the rest are examples)."""
        values = envfile.parse((ROOT / "debian" / "etc-default-dhis2gw").read_text())
        self.assertEqual(values, {"DHIS2GW_MIGRATE_ON_INSTALL": "no"})

    def test_get_and_exec_for_maintainer_scripts(self) -> None:
        """``python -m dhis2gw.config.envfile FILE --get NAME`` and ``FILE -- COMMAND`` (what postinst uses)."""
        path = Path(tempfile.mkdtemp()) / "default"
        path.write_text("DHIS2GW_MIGRATE_ON_INSTALL=yes\nSECRET='pa$$word'\n")
        get = subprocess.run([sys.executable, "-m", "dhis2gw.config.envfile", str(path), "--get",
                              "DHIS2GW_MIGRATE_ON_INSTALL", "no"], capture_output=True, text=True, env=_env())
        self.assertEqual((get.returncode, get.stdout), (0, "yes\n"))
        missing = subprocess.run([sys.executable, "-m", "dhis2gw.config.envfile", str(path.with_name("none")), "--get",
                                  "DHIS2GW_MIGRATE_ON_INSTALL", "no"], capture_output=True, text=True, env=_env())
        self.assertEqual(missing.stdout, "no\n")
        run = subprocess.run([sys.executable, "-m", "dhis2gw.config.envfile", str(path), "--", "sh", "-c",
                              'printf %s "$SECRET"'], capture_output=True, text=True, env=_env())
        self.assertEqual(run.stdout, "pa$$word")
        postinst = (ROOT / "debian" / "dhis2gw.postinst").read_text()
        self.assertNotRegex(postinst, r"(^|[\s;(&|])\. /etc/default/dhis2gw", "postinst must not source it as shell")
        self.assertIn("-m dhis2gw.config.envfile /etc/default/dhis2gw", postinst)


class CliEnvironmentFileTests(SynchronousTestCase):
    """check-config and createuser see what the unit sees."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dhis2gw-envfile-"))
        self.file = self.dir / "default"
        self.file.write_text("DHIS2GW_DB='postgres://gw:pa$$word@db.example.org/gw'\n"
                             "DHIS2GW_JWT_SECRET=" + "s" * 40 + "\n"
                             "DHIS2GW_SERVER_PORT=9555\n")

    def test_check_config_reads_the_file_named(self) -> None:
        """--env-file (or $DHIS2GW_ENV_FILE, the wrapper's default) feeds check-config; the shell wins."""
        for argv, extra in ((("--env-file", str(self.file), "check-config"), {}),
                            (("check-config", "--env-file", str(self.file)), {}),
                            (("check-config",), {"DHIS2GW_ENV_FILE": str(self.file)})):
            result = _run(*argv, env=_env(**extra))
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("postgres://gw:***@db.example.org/gw", result.stdout)
            self.assertIn("9555", result.stdout)
            self.assertIn(f"environment file: {self.file}", result.stdout)
        shell_wins = _run("check-config", env=_env(DHIS2GW_ENV_FILE=str(self.file), DHIS2GW_SERVER_PORT="9556"))
        self.assertIn("9556", shell_wins.stdout)
        self.assertNotIn("9555", shell_wins.stdout)

    def test_missing_and_absent_files(self) -> None:
        """A file named with --env-file must exist (one line); the default one may be absent."""
        named = _run("--env-file", str(self.dir / "none"), "check-config", env=_env())
        self.assertEqual(named.returncode, 2)
        self.assertEqual(named.stderr.strip(), f"dhis2gw: the environment file {self.dir / 'none'} does not exist")
        default = _run("check-config", env=_env(DHIS2GW_ENV_FILE=str(self.dir / "none"),
                                                DHIS2GW_JWT_SECRET="t" * 40))
        self.assertEqual(default.returncode, 0, default.stderr)

    def test_wrapper_defaults_to_the_units_file(self) -> None:
        """The packaged /usr/bin/dhis2gw reads /etc/default/dhis2gw unless told otherwise."""
        wrapper = (ROOT / "debian" / "dhis2gw.wrapper").read_text()
        self.assertIn("DHIS2GW_ENV_FILE=${DHIS2GW_ENV_FILE-/etc/default/dhis2gw}", wrapper)
        unit = (ROOT / "debian" / "dhis2gw.service").read_text()
        self.assertIn("EnvironmentFile=-/etc/default/dhis2gw", unit)


class OneLineErrorTests(SynchronousTestCase):
    """What an operator can fix is one line on stderr, with a non-zero status."""

    def test_unreachable_database(self) -> None:
        """migrate, createuser and import-legacy against a closed port: one line naming the database (no password)."""
        env = _env(DHIS2GW_DB="postgresql://gw:hidden@127.0.0.1:1/gw", DHIS2GW_JWT_SECRET="s" * 40,
                   DHIS2GW_MIGRATIONS_DIR=str(ROOT / "migrations"))
        for argv, stdin in ((("migrate",), None), (("createuser", "alice", "--password-stdin"), "a-Long-pass-12\n"),
                            (("import-legacy", "--from", "postgresql://go@127.0.0.1:1/go", "--dry-run"), None)):
            result = _run(*argv, env=env, stdin=stdin)
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertNotIn("Traceback", result.stderr + result.stdout)
            lines = result.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, result.stderr)
            self.assertRegex(lines[0], r"^dhis2gw: cannot use the database postgresql://gw:\*\*\*@127\.0\.0\.1:1/gw: ")
            self.assertNotIn("hidden", result.stderr)

    def test_createuser_without_a_terminal(self) -> None:
        """No terminal and no --password-stdin: one line saying how to give the password."""
        result = _run("createuser", "alice", env=_env(DHIS2GW_JWT_SECRET="s" * 40))
        self.assertEqual(result.returncode, 2)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn("--password-stdin", result.stderr)


class VersionTests(SynchronousTestCase):
    """One version source: dhis2gw/__init__.py; setup.cfg, the CLI and the changelog agree with it."""

    def test_one_source(self) -> None:
        """setup.cfg reads the version from the package; --version prints it; the changelog's top entry names it."""
        self.assertIn("version = attr: dhis2gw.__version__", (ROOT / "setup.cfg").read_text())
        self.assertEqual(_run("--version", env=_env()).stdout.strip(), f"dhis2gw {__version__}")
        top = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
        self.assertEqual(re.match(r"^dhis2gw \(([^)]+)\)", top).group(1), __version__)  # type: ignore[union-attr]
        self.assertIn('dhis2gw/__init__.py', (ROOT / "scripts" / "build-deb.sh").read_text())


class ReproducibleBuildSettingsTests(SynchronousTestCase):
    """What makes two ``make deb`` builds byte-identical, checked without building (the real double
    build is ``DHIS2GW_DEB_TWICE=1 pytest tests/packaging/test_deb.py -k twice``)."""

    def test_build_script_settings(self) -> None:
        """Times from the changelog, a fixed staging directory (pip's RECORD hashes the scripts while
        their #! line names it), no byte-code, a fixed locale and zone."""
        script = (ROOT / "scripts" / "build-deb.sh").read_text()
        for setting in ("SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l debian/changelog -S Timestamp)",
                        "export SOURCE_DATE_EPOCH", 'work="${TMPDIR:-/tmp}/dhis2gw-deb-build-$(id -u)"',
                        "PYTHONDONTWRITEBYTECODE=1", "LC_ALL=C.UTF-8 TZ=UTC"):
            self.assertIn(setting, script)
        self.assertNotIn("mktemp", script)
        rules = (ROOT / "debian" / "rules").read_text()
        for setting in ("--no-compile", "-name __pycache__ -type d -prune -exec rm -rf {} +"):
            self.assertIn(setting, rules)
