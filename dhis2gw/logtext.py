"""Text that came from a request, made safe for one log line."""
from __future__ import annotations


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe for one log line: control characters (CR, LF, ESC…) escaped, length bounded
    (issue 16, F11: a username with CR/LF forged log lines)."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return out + ("…" if len(text) > limit else "")
