"""Directory operations: ``users`` (public profiles by id, or by the login someone typed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from chatd.core.accounts import MAX_LOGIN_CHARS
from chatd.gateway.ops.base import Call, Reply, Request
from chatd.gateway.wire import MAX_USER_LOOKUP, Fields, encode_ok, refused
from chatd.i18n import N_

if TYPE_CHECKING:
    from chatd.core.records import User

BAD_USER_IDS = N_("The list of users to look up is not valid.")
BAD_LOGINS = N_("The list of logins to look up is not valid (at most {max}).")
LOOKUP_COUNT = N_("Look up from {min} to {max} users at a time.")


def public_profile(user: User) -> dict[str, Any]:
    profile = user.profile
    return {
        "id": user.id,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "profession": profile.profession,
        "structure": profile.structure,
        "disabled": user.disabled,
    }


@dataclass(frozen=True, slots=True)
class Users(Request):
    op = "users"
    rid: int
    ids: tuple[int, ...]
    logins: tuple[str, ...] = ()  # look-up by login name: how a client turns "p.martin" into an id

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        ids = f.ints(
            "ids",
            min_items=0,
            max_items=MAX_USER_LOOKUP,
            optional=True,
            invalid=BAD_USER_IDS,
            too_many=N_("Look up at most {max} users at a time."),
        )
        logins = f.strings(
            "logins", max_items=MAX_USER_LOOKUP, max_chars=MAX_LOGIN_CHARS, invalid=BAD_LOGINS
        )
        if not 1 <= len(ids) + len(logins) <= MAX_USER_LOOKUP:
            raise refused("ids", LOOKUP_COUNT, min=1, max=MAX_USER_LOOKUP)
        return cls(rid, ids, logins)

    async def run(self, call: Call) -> Reply:
        directory = call.services.directory
        # By id, only the people the asker shares or shared a conversation with (the others
        # are answered as unknown ids: no oracle of which accounts exist); by login, whoever
        # they name exactly.
        by_id, unknown = await directory.by_ids(call.session.user_id, self.ids)
        by_login, unknown_logins = await directory.by_logins(self.logins)
        # A login is shown only to someone who already typed it: looking up by id never
        # reveals one (logins are half of a credential).
        found = [public_profile(user) for user in by_id]
        found += [{**public_profile(user), "login": user.login} for user in by_login]
        return encode_ok(self.rid, users=found, unknown=unknown, unknown_logins=unknown_logins)


REQUESTS = (Users,)
