"""A user's own sessions (logins, one per device): ``sessions`` lists them,
``revoke_session`` ends one, ``revoke_other_sessions`` ends all but the one asking.

The rules — what a session is, the per-user cap, the ids — are
:mod:`chatd.services.sessions`'.  Not to be confused with :mod:`.session`, the operations of
the connection itself (``auth``, ``ping``…).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Self

from chatd.gateway.ops.base import Call, Reply, Request
from chatd.gateway.wire import Fields, encode_ok, refused
from chatd.i18n import N_

SESSION_ID_CHARS = 8
BAD_SESSION = N_("This session number is not valid (8 characters, as chatd-cli sessions shows).")


@dataclass(frozen=True, slots=True)
class ListSessions(Request):
    op = "sessions"
    rid: int

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        return cls(rid)

    async def run(self, call: Call) -> Reply:
        assert call.session.principal is not None
        found = await call.services.sessions.list(call.session.principal)
        return encode_ok(
            self.rid,
            sessions=[
                {
                    "id": s.id,
                    "device": s.device,
                    "created_at": s.created_at,
                    "last_seen_at": s.last_seen_at,
                    "expires_at": s.expires_at,
                    "connections": s.connections,
                    "current": s.current,
                }
                for s in found
            ],
        )


@dataclass(frozen=True, slots=True)
class RevokeSession(Request):
    op = "revoke_session"
    rid: int
    session: str

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        session: str = f.text(
            "session", max_chars=SESSION_ID_CHARS, min_chars=SESSION_ID_CHARS, invalid=BAD_SESSION
        )
        if not set(session) <= set(string.hexdigits.lower()):
            raise refused("session", BAD_SESSION)
        return cls(rid, session)

    async def run(self, call: Call) -> Reply:
        assert call.session.principal is not None
        revoked = await call.services.sessions.revoke(call.session.principal, self.session)
        return encode_ok(self.rid, revoked=revoked)


@dataclass(frozen=True, slots=True)
class RevokeOtherSessions(Request):
    op = "revoke_other_sessions"
    rid: int

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        return cls(rid)

    async def run(self, call: Call) -> Reply:
        assert call.session.principal is not None
        revoked = await call.services.sessions.revoke(call.session.principal, None)
        return encode_ok(self.rid, revoked=revoked)


REQUESTS = (ListSessions, RevokeSession, RevokeOtherSessions)
