"""``CallbackSubmitters``: which users the callbacks file names, and who may name a ``callback_url``."""
from __future__ import annotations

from dhis2gw.callbacks.settings import CallbackSettings
from dhis2gw.storage.users import UserStore


class CallbackSubmitters:
    """The callbacks file's per-submitter entries by user id (usernames resolved once, then cached),
    and the ``callback_allowed`` permission."""

    def __init__(self, users: UserStore, settings: CallbackSettings) -> None:
        self.users = users
        self.settings = settings
        self._user_ids: dict[int, str] = {}

    async def entry(self, submitter_id: int | None) -> tuple[str | None, dict[str, str]]:
        """(username, its callbacks-file entry ``{url, secret}``) of a submitter id; ``(None, {})`` if none."""
        if submitter_id is None or not self.settings.submitters:
            return None, {}
        if submitter_id not in self._user_ids:
            for name in self.settings.submitters:
                rows, _ = await self.users.list(username=name, page_size=1)
                for user in rows:
                    self._user_ids[int(user["id"])] = name
        username = self._user_ids.get(submitter_id)
        return username, self.settings.submitters.get(username or "", {})

    async def ids_with_url(self) -> list[int]:
        """Ids of the users with a callback URL in the callbacks file."""
        ids = []
        for username, entry in self.settings.submitters.items():
            if not entry.get("url"):
                continue
            rows, _ = await self.users.list(username=username, page_size=1)
            ids += [int(user["id"]) for user in rows]
        return ids

    async def may_name_url(self, submitter_id: int | None) -> bool:
        """The submitter's ``callback_allowed`` flag (no submitter: a gateway-made row, allowed)."""
        if submitter_id is None:
            return True
        return await self.users.callback_allowed(submitter_id)
