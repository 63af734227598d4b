"""Finding colleagues: public profiles by user id or by login.

Today the lookup a client needs to show names and to turn ``p.martin`` into an id; the
professional directory (search by name, profession, city; favourites) grows here.
"""

from __future__ import annotations

from chatd.core.errors import UserNotFound
from chatd.core.records import User
from chatd.store.contract import AccountStore


class Directory:
    def __init__(self, store: AccountStore) -> None:
        self._store = store

    async def by_ids(self, user_ids: tuple[int, ...]) -> tuple[list[User], list[int]]:
        """The users found, and the ids that name nobody (each id once, in order)."""
        found: list[User] = []
        unknown: list[int] = []
        for user_id in dict.fromkeys(user_ids):
            try:
                found.append(await self._store.get_user(user_id))
            except UserNotFound:
                unknown.append(user_id)
        return found, unknown

    async def by_logins(self, logins: tuple[str, ...]) -> tuple[list[User], list[str]]:
        """The users found, and the logins that name nobody (each login once, in order)."""
        found: list[User] = []
        unknown: list[str] = []
        for login in dict.fromkeys(logins):
            user = await self._store.find_user_by_login(login)
            if user is None:
                unknown.append(login)
            else:
                found.append(user)
        return found, unknown
