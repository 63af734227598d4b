"""The live WebSocket connections of every node, on PostgreSQL: what the per-user cap counts.

The counterpart of :mod:`chatd.store.sqlite.live_sessions`.  A node records each connection
it accepts (:func:`open_live_session_txn`), deletes it when the connection ends, and refreshes
``seen_at`` of all its rows periodically: the rows of a node that died stop being refreshed
and are not counted once older than the cutoff the caller gives.  The same heartbeat stamps
the tokens' ``last_seen_at``.

**Two nodes opening a session for one user at the same instant.**  SQLite counts and inserts
under its single writer; here the count and the insert of two nodes could interleave, and
both take the last place.  So :func:`open_live_session_txn` first locks the user's row
(``SELECT … FROM users … FOR NO KEY UPDATE``): every opening for that user queues on that
lock, and under READ COMMITTED each statement after it sees what the one before committed,
so the count is right when the insert is made.  ``NO KEY UPDATE`` is the weakest lock that
conflicts with itself: it does not block the key-share locks that foreign keys to ``users``
take (other nodes inserting tokens, memberships, live sessions of that user), nor readers.
The lock is the transaction's first, and one user's only, so openings cannot deadlock with
each other.

Statements that change several rows (the heartbeat's :func:`refresh_node_txn`, the removal
of a user's stale rows) lock them in primary-key order first, so two nodes touching rows
they share (a dead node's rows, a token used on two nodes) wait for each other instead of
deadlocking (a deadlock would still be retried whole by :meth:`PostgresContext.write`).
"""

from __future__ import annotations

from collections.abc import Sequence

from chatd.core.records import LiveSession
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection


async def open_live_session_txn(
    conn: Connection, session: LiveSession, cap: int, stale_before: int
) -> bool:
    # The user's row lock serialises every opening for this user (module docstring).  A
    # user that does not exist locks nothing; the insert's foreign key then refuses it.
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", session.user_id)
    await conn.execute(
        "DELETE FROM live_sessions WHERE id IN (SELECT id FROM live_sessions"
        " WHERE user_id = $1 AND seen_at < $2 ORDER BY id FOR UPDATE)",
        session.user_id,
        stale_before,
    )
    count = await conn.fetchval(
        "SELECT count(*) FROM live_sessions WHERE user_id = $1", session.user_id
    )
    if int(count) >= cap:
        return False
    await conn.execute(
        "INSERT INTO live_sessions (id, node, user_id, token_hash, opened_at, seen_at)"
        " VALUES ($1, $2, $3, $4, $5, $5)",
        session.id,
        session.node,
        session.user_id,
        session.token_hash,
        session.opened_at,
    )
    await conn.execute(
        "UPDATE auth_tokens SET last_seen_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        session.opened_at,
        session.token_hash,
    )
    return True


async def close_live_sessions_txn(conn: Connection, ids: Sequence[str]) -> None:
    await conn.execute("DELETE FROM live_sessions WHERE id = ANY($1::text[])", list(ids))


async def refresh_node_txn(conn: Connection, node: str, now_ms: int) -> None:
    # Lock the rows in primary-key order before updating them (module docstring).
    await conn.execute(
        "UPDATE live_sessions SET seen_at = $1 WHERE id IN (SELECT id FROM live_sessions"
        " WHERE node = $2 ORDER BY id FOR NO KEY UPDATE)",
        now_ms,
        node,
    )
    await conn.execute(
        "WITH locked AS (SELECT token_hash FROM auth_tokens WHERE revoked_at IS NULL"
        "  AND token_hash IN (SELECT token_hash FROM live_sessions WHERE node = $2)"
        "  ORDER BY token_hash FOR NO KEY UPDATE)"
        " UPDATE auth_tokens a SET last_seen_at = $1 FROM locked"
        " WHERE a.token_hash = locked.token_hash",
        now_ms,
        node,
    )


async def live_counts_txn(conn: Connection, user_id: int, stale_before: int) -> dict[bytes, int]:
    rows = await conn.fetch(
        "SELECT token_hash, count(*) FROM live_sessions WHERE user_id = $1 AND seen_at >= $2"
        " GROUP BY token_hash",
        user_id,
        stale_before,
    )
    return {bytes(r[0]): int(r[1]) for r in rows}


class PostgresLiveSessions:
    """:class:`~chatd.store.contract.LiveSessionStore` on PostgreSQL."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx

    async def open_live_session(self, session: LiveSession, *, cap: int, stale_before: int) -> bool:
        return await self._ctx.write(
            "open_live_session",
            lambda conn: open_live_session_txn(conn, session, cap, stale_before),
            keeps_conversation_cache=True,
        )

    async def close_live_sessions(self, ids: Sequence[str]) -> None:
        await self._ctx.write(
            "close_live_sessions",
            lambda conn: close_live_sessions_txn(conn, list(ids)),
            keeps_conversation_cache=True,
        )

    async def refresh_live_sessions(self, node: str, now_ms: int) -> None:
        await self._ctx.write(
            "refresh_live_sessions",
            lambda conn: refresh_node_txn(conn, node, now_ms),
            keeps_conversation_cache=True,
        )

    async def end_node_sessions(self, node: str) -> None:
        async def run(conn: Connection) -> None:
            await conn.execute("DELETE FROM live_sessions WHERE node = $1", node)

        await self._ctx.write("end_node_sessions", run, keeps_conversation_cache=True)

    async def live_session_counts(self, user_id: int, stale_before: int) -> dict[bytes, int]:
        async with self._ctx.read("read_live_sessions") as conn:
            return await live_counts_txn(conn, user_id, stale_before)
