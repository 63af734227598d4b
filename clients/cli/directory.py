"""Who is who: user ids → names, login names → ids, through the protocol's ``users`` op.

People type login names (``p.martin``); the protocol speaks user ids.  ``users`` with
``logins`` turns the former into the latter, ``users`` with ``ids`` gives the names to show
(first and last name, with the structure: how professionals check they picked the right
person).  Answers are cached for the life of the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from clients.cli.errors import NotFoundError
from clients.cli.i18n import _, ngettext
from clients.cli.visible import visible

MAX_LOOKUP = 200  # protocol: 1 to 200 ids and logins per request


class Requester(Protocol):
    async def request(self, op: str, **fields: Any) -> dict[str, Any]: ...


def display_name(profile: dict[str, Any]) -> str:
    name = f"{profile.get('first_name', '')} {profile.get('last_name', '')}".strip()
    return visible(name) if name else _("user {id}", id=str(profile.get("id")))


class Directory:
    def __init__(self, me: dict[str, Any] | None = None) -> None:
        self._profiles: dict[int, dict[str, Any]] = {}
        self._by_login: dict[str, int] = {}
        self.me_id: int | None = None
        if me is not None:
            self.me_id = int(me["id"])
            self._remember(me)

    def _remember(self, profile: dict[str, Any]) -> None:
        user_id = int(profile["id"])
        known = self._profiles.setdefault(user_id, {})
        known.update(profile)
        if "login" in profile:
            self._by_login[str(profile["login"]).lower()] = user_id

    def profile(self, user_id: int) -> dict[str, Any] | None:
        return self._profiles.get(user_id)

    def name(self, user_id: int | None) -> str:
        if user_id is None:
            return "?"
        profile = self._profiles.get(user_id)
        return display_name(profile) if profile else _("user {id}", id=str(user_id))

    def name_with_structure(self, user_id: int) -> str:
        profile = self._profiles.get(user_id) or {}
        structure = profile.get("structure")
        if not structure:
            return self.name(user_id)
        return f"{self.name(user_id)} ({visible(structure)})"

    def login(self, user_id: int) -> str | None:
        """The login, only if this process learnt it (ours, or one the user typed)."""
        login = (self._profiles.get(user_id) or {}).get("login")
        return visible(login) if login is not None else None

    async def ensure(self, client: Requester, ids: Iterable[int]) -> None:
        """Fetch the profiles of ``ids`` not known yet (unknown ids are named by number)."""
        missing = sorted({i for i in ids if isinstance(i, int) and i not in self._profiles})
        for start in range(0, len(missing), MAX_LOOKUP):
            reply = await client.request("users", ids=missing[start : start + MAX_LOOKUP])
            for profile in reply.get("users", []):
                self._remember(profile)

    async def resolve(self, client: Requester, logins: Iterable[str]) -> list[int]:
        """Login names → user ids, or :class:`NotFoundError` naming the unknown ones."""
        wanted = [login.strip() for login in logins if login.strip()]
        missing = sorted({w for w in wanted if w.lower() not in self._by_login})
        unknown: list[str] = []
        for start in range(0, len(missing), MAX_LOOKUP):
            reply = await client.request("users", logins=missing[start : start + MAX_LOOKUP])
            for profile in reply.get("users", []):
                self._remember(profile)
            unknown += [str(u) for u in reply.get("unknown_logins", [])]
        for login in wanted:
            profile = self._profiles.get(self._by_login.get(login.lower(), -1))
            if profile is not None and profile.get("disabled"):
                unknown.append(login)
        if unknown:
            names = sorted(set(unknown))
            raise NotFoundError(
                ngettext(
                    "No active user with login {logins}.",
                    "No active users with logins {logins}.",
                    len(names),
                    logins=", ".join(names),
                ),
                code="user_not_found",
            )
        return [self._by_login[login.lower()] for login in wanted]
