"""Print the configuration reference (Markdown) from the key table and conf/dhis2gw.yml's comments.

Usage: .venv/bin/python scripts/config_reference.py > /tmp/ref.md   (pasted into README.md;
tests/test_readme.py checks that the README lists every key and environment variable).
"""
from __future__ import annotations

import re
from pathlib import Path

from dhis2gw.config.schema import KEYS

ROOT = Path(__file__).resolve().parents[1]


def comments() -> dict[str, str]:
    """key path → the comment block just above it in conf/dhis2gw.yml (joined, trimmed)."""
    out: dict[str, str] = {}
    section = ""
    block: list[str] = []
    for line in (ROOT / "conf" / "dhis2gw.yml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
            continue
        m = re.match(r"^(\s*)([a-z0-9_]+):", line)
        if m:
            indent, key = len(m.group(1)), m.group(2)
            if indent == 0:
                section = key
                path = key
            else:
                path = f"{section}.{key}"
            if block:
                out[path] = " ".join(b for b in block if b)
        block = []
    return out


def main() -> None:
    notes = comments()
    current = None
    for key in KEYS:
        section = key.section or "(top level)"
        if section != current:
            current = section
            print(f"\n**{section}**\n")
            print("| key | environment variable | default | meaning |")
            print("|---|---|---|---|")
        default = "***" if key.secret and key.default else key.default
        if isinstance(default, tuple):
            default = ",".join(default)
        default = "(none)" if default in ("", None, ()) else f"`{default}`"
        env = ", ".join(f"`{e}`" for e in key.env)
        note = notes.get(key.path, "").replace("|", "\\|")
        note = re.sub(r"\s*\(env [^)]*\)", "", note)
        print(f"| `{key.name}` | {env} | {default} | {note} |")


if __name__ == "__main__":
    main()
