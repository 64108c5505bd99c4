"""Remembered settings of the admin app: the last server URL and username, never a password.

Stored as JSON in the app's user data directory (Kivy's ``App.user_data_dir``) or any path
given; a missing or broken file just means "no settings yet".
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: Keys allowed in the file: an allow-list, so a password can never be written by mistake.
ALLOWED = ("server_url", "username")


class SettingsStore:
    """A small JSON file of remembered values."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if k in ALLOWED and isinstance(v, str)} if isinstance(data, dict) else {}

    def save(self, **values: str) -> None:
        data = self.load()
        data.update({k: v for k, v in values.items() if k in ALLOWED})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)
