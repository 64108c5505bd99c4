"""The README tells the truth about the commands and the configuration reference."""
from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.config.schema import KEYS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


class ReadmeTests(SynchronousTestCase):
    """Checks that fail when the README drifts from the code."""

    def test_two_commands_come_first(self) -> None:
        """The first code block holds exactly the run and test commands, and both scripts exist."""
        block = README.split("```sh", 1)[1].split("```", 1)[0]
        commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
        self.assertEqual(commands, ["scripts/dev.sh run", "scripts/dev.sh test"])
        root = Path(__file__).resolve().parents[1]
        self.assertTrue((root / "scripts" / "dev.sh").exists())
        ci = (root / ".ci" / "run").read_text()
        self.assertIn("scripts/dev.sh test", ci)

    def test_every_key_and_environment_variable_is_documented(self) -> None:
        """Each configuration key appears with each of its environment variables."""
        missing = [f"{k.path} {env}" for k in KEYS for env in k.env if f"`{env}`" not in README]
        missing += [k.path for k in KEYS if f"`{k.name}`" not in README]
        self.assertEqual(missing, [])
