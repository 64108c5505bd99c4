"""Fill README.md's generated parts: the configuration reference (from the key table) and the
latest benchmark figures (from bench-results/*.md). Idempotent: run it after changing either.

Usage: .venv/bin/python scripts/render_readme.py
"""
from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN_CONF, END_CONF = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"


def config_reference() -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main()
    return out.getvalue().strip()


def api_reference() -> str:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "api_reference.py")], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    return out.strip()


def main() -> None:
    text = (ROOT / "README.md").read_text()
    api = f"<!-- api-reference:begin -->\n{api_reference()}\n<!-- api-reference:end -->"
    text = re.sub(r"<!-- api-reference:begin -->.*?<!-- api-reference:end -->", lambda _: api, text, flags=re.S)
    block = f"{BEGIN_CONF}\n{config_reference()}\n{END_CONF}"
    if "CONFIG_REFERENCE" in text:
        text = text.replace("CONFIG_REFERENCE", block)
    else:
        text = re.sub(re.escape(BEGIN_CONF) + ".*?" + re.escape(END_CONF), lambda _: block, text, flags=re.S)
    (ROOT / "README.md").write_text(text)


if __name__ == "__main__":
    main()
