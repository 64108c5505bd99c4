"""Who is calling: the authenticated user as the API sees it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    :param user_id: ``users.id``.
    :param uid: the user's public 11-character id.
    :param role: ``admin``, ``operator`` or ``submitter``.
    :param source_name: the mapping set this user's data uses (submitters).
    :param method: how it authenticated: ``bearer``, ``basic`` or ``token``.
    :param callback_allowed: may name a ``callback_url`` in a submission body.
    :param orgunit_scope: org-unit UIDs whose subtrees this user may write (empty: no limit).
    :param dataset_scope: data-set UIDs this user may write (empty: no limit).
    :param may_delete: may send destructive import options (``importStrategy=DELETE``).
    """

    user_id: int
    uid: str
    username: str
    role: str
    source_name: str | None = None
    method: str = "bearer"
    callback_allowed: bool = False
    orgunit_scope: tuple[str, ...] = ()
    dataset_scope: tuple[str, ...] = ()
    may_delete: bool = False
