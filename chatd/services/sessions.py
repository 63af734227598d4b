"""A user's own sessions: the cap on live connections, the list of logins, revoking them.

*A session* is a login: one token, on one device, until it expires or is revoked.  Each of
its WebSocket connections is recorded in the store while it lives (every node's, in one
table), and ``CHATD_SESSIONS_PER_USER`` caps how many one user has at once, on all nodes
together: the cap counts connections, because they are what holds server memory (a queue
each), and a single token can open any number of them.  A connection over the cap is
refused with close 4008 ``too_many_sessions``.

Each node refreshes its connections every :data:`HEARTBEAT_MS`; those not refreshed for
:data:`STALE_MS` (a node that died without saying so) stop counting.  A node that stops
cleanly forgets its own at once.

A user lists their live logins — the device (the family of the client, from
:mod:`chatd.core.devices`), when it logged in, when it was last connected, how many
connections it has now — and revokes one, or all but the one asking.  Revoking ends the
token's connections on every node at once (:class:`~chatd.broker.base.EndSessions`, 4003),
as a logout does.  A session is named by a short id derived from its token's digest
(:func:`public_id`): the digest itself never leaves the server.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from chatd.broker.base import Broker, EndSessions, SessionEnd
from chatd.core.accounts import Principal
from chatd.core.clock import Clock, wall_clock_ms
from chatd.core.errors import SessionNotFound, TooManySessionsError
from chatd.core.records import LiveSession
from chatd.i18n import N_
from chatd.store.contract import AccountStore, LiveSessionStore

HEARTBEAT_MS = 10_000
STALE_MS = 3 * HEARTBEAT_MS  # three missed heartbeats: the node is gone
PUBLIC_ID_CHARS = 8
AT_THE_CAP = N_(
    "You already have {max} open sessions, the most allowed; close one, or end those you no"
    " longer use (chatd-cli sessions)."
)


class SessionStore(AccountStore, LiveSessionStore, Protocol):
    """What this service needs of the store."""


def public_id(token_hash: bytes) -> str:
    """The id a user sees for one of their sessions: 8 hex digits, derived one way from the
    token's digest (unique among one user's few sessions; says nothing of the token)."""
    return hashlib.sha256(b"chatd session id\x00" + token_hash).hexdigest()[:PUBLIC_ID_CHARS]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    device: str | None
    created_at: int
    last_seen_at: int | None
    expires_at: int
    connections: int
    current: bool


class Sessions:
    def __init__(
        self, store: SessionStore, broker: Broker, clock_ms: Clock = wall_clock_ms
    ) -> None:
        self._store = store
        self._broker = broker
        self._clock_ms = clock_ms

    # ------------------------------------------------------------------ connections

    async def admit(self, principal: Principal, session_id: str, node: str, cap: int) -> None:
        """Record a new connection of ``principal``, or refuse it with
        :class:`~chatd.core.errors.TooManySessionsError` at ``cap``."""
        now = self._clock_ms()
        stale_before = now - STALE_MS
        # A read first: a client retrying at the cap must not cost a write each time; the
        # write transaction then decides (two nodes cannot both take the last place).
        counts = await self._store.live_session_counts(principal.user_id, stale_before)
        live = LiveSession(session_id, node, principal.user_id, principal.token_hash, now)
        if sum(counts.values()) >= cap or not await self._store.open_live_session(
            live, cap=cap, stale_before=stale_before
        ):
            raise TooManySessionsError(AT_THE_CAP, max=cap)

    async def release(self, session_id: str) -> None:
        await self._store.close_live_sessions([session_id])

    async def heartbeat(self, node: str) -> None:
        await self._store.refresh_live_sessions(node, self._clock_ms())

    async def end_node(self, node: str) -> None:
        await self._store.end_node_sessions(node)

    # ------------------------------------------------------------------ a user's own

    async def list(self, principal: Principal) -> list[SessionInfo]:
        """The user's live logins, oldest first."""
        now = self._clock_ms()
        tokens = await self._store.list_session_tokens(principal.user_id, now)
        counts = await self._store.live_session_counts(principal.user_id, now - STALE_MS)
        return [
            SessionInfo(
                public_id(token.token_hash),
                token.device,
                token.created_at,
                token.last_seen_at,
                token.expires_at,
                counts.get(token.token_hash, 0),
                token.token_hash == principal.token_hash,
            )
            for token in tokens
        ]

    async def revoke(self, principal: Principal, session: str | None) -> int:
        """Revoke the user's session ``session`` (its :func:`public_id`; the asking one
        too, which is then a logout), or with None every one but the asking one; its
        connections close at once.  How many were revoked; SessionNotFound for an id that
        is not one of the user's live sessions."""
        now = self._clock_ms()
        if session is None:
            revoked = await self._store.revoke_other_session_tokens(
                principal.user_id, principal.token_hash, now
            )
        else:
            tokens = await self._store.list_session_tokens(principal.user_id, now)
            found = [t.token_hash for t in tokens if public_id(t.token_hash) == session]
            if not found:
                raise SessionNotFound()
            revoked = [h for h in found if await self._store.revoke_session_token(h, now)]
        if revoked:
            self._broker.publish(EndSessions(SessionEnd.LOGGED_OUT, tuple(revoked)))
        return len(revoked)
