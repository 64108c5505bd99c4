"""Who is calling: the authenticated user as the API sees it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    :param user_id: ``users.id``.
    :param uid: the user's public 11-character id.
    :param role: ``admin``, ``operator`` or ``submitter``.
    :param source_name: the mapping set this user's data uses (submitters).
    :param method: how it authenticated: ``bearer``, ``basic`` or ``token``.
    """

    user_id: int
    uid: str
    username: str
    role: str
    source_name: Optional[str] = None
    method: str = "bearer"
