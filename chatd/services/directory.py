"""Finding colleagues: public profiles by user id or by login.

Today the lookup a client needs to show names and to turn ``p.martin`` into an id; the
professional directory (search by name, profession, city; favourites) grows here.

Who may see whose profile, for now: by id, only the people one shares or shared a conversation
with (both members of it at some time, left conversations included: their events name those
people) and oneself; by login, whoever one names by their exact login (the way to start a
conversation with someone new).  Anyone else is answered exactly as an id that names nobody,
so that the answer tells nothing about which accounts exist.  The issue "Finding people and
conversations" defines the public directory that will widen this.
"""

from __future__ import annotations

from chatd.core.errors import UserNotFound
from chatd.core.records import User
from chatd.store.contract import AccountStore, LogStore


class Directory:
    def __init__(self, accounts: AccountStore, log: LogStore) -> None:
        self._accounts = accounts
        self._log = log

    async def by_ids(self, asker: int, user_ids: tuple[int, ...]) -> tuple[list[User], list[int]]:
        """The users ``asker`` may see, and the other ids — those that name nobody and those
        ``asker`` may not see, indistinguishably (each id once, in order)."""
        wanted = list(dict.fromkeys(user_ids))
        fellows = await self._log.fellow_members(asker, wanted)
        found: list[User] = []
        unknown: list[int] = []
        for user_id in wanted:
            if user_id not in fellows:
                unknown.append(user_id)
                continue
            try:
                found.append(await self._accounts.get_user(user_id))
            except UserNotFound:
                unknown.append(user_id)
        return found, unknown

    async def by_logins(self, logins: tuple[str, ...]) -> tuple[list[User], list[str]]:
        """The users found, and the logins that name nobody (each login once, in order)."""
        found: list[User] = []
        unknown: list[str] = []
        for login in dict.fromkeys(logins):
            user = await self._accounts.find_user_by_login(login)
            if user is None:
                unknown.append(login)
            else:
                found.append(user)
        return found, unknown
