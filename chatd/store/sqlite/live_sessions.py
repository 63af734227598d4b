"""The live WebSocket connections of every node, on SQLite: what the per-user cap counts.

A node records each connection it accepts (:func:`open_live_session_txn`, which counts and
inserts in one write transaction, so two nodes cannot both take the last place), deletes it
when the connection ends, and refreshes ``seen_at`` of all its rows periodically: the rows of
a node that died stop being refreshed and are not counted once older than the cutoff the
caller gives.  The same heartbeat stamps the tokens' ``last_seen_at``.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from chatd.core.records import LiveSession
from chatd.store.sqlite.context import SqliteContext


async def open_live_session_txn(
    conn: aiosqlite.Connection, session: LiveSession, cap: int, stale_before: int
) -> bool:
    await conn.execute(
        "DELETE FROM live_sessions WHERE user_id = ? AND seen_at < ?",
        (session.user_id, stale_before),
    )
    rows = list(
        await conn.execute_fetchall(
            "SELECT count(*) FROM live_sessions WHERE user_id = ?", (session.user_id,)
        )
    )
    if int(rows[0][0]) >= cap:
        return False
    await conn.execute(
        "INSERT INTO live_sessions (id, node, user_id, token_hash, opened_at, seen_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            session.id,
            session.node,
            session.user_id,
            session.token_hash,
            session.opened_at,
            session.opened_at,
        ),
    )
    await conn.execute(
        "UPDATE auth_tokens SET last_seen_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        (session.opened_at, session.token_hash),
    )
    return True


async def close_live_sessions_txn(conn: aiosqlite.Connection, ids: Sequence[str]) -> None:
    await conn.executemany("DELETE FROM live_sessions WHERE id = ?", [(i,) for i in ids])


async def refresh_node_txn(conn: aiosqlite.Connection, node: str, now_ms: int) -> None:
    await conn.execute("UPDATE live_sessions SET seen_at = ? WHERE node = ?", (now_ms, node))
    await conn.execute(
        "UPDATE auth_tokens SET last_seen_at = ? WHERE revoked_at IS NULL AND token_hash IN"
        " (SELECT token_hash FROM live_sessions WHERE node = ?)",
        (now_ms, node),
    )


async def live_counts_txn(
    conn: aiosqlite.Connection, user_id: int, stale_before: int
) -> dict[bytes, int]:
    rows = await conn.execute_fetchall(
        "SELECT token_hash, count(*) FROM live_sessions WHERE user_id = ? AND seen_at >= ?"
        " GROUP BY token_hash",
        (user_id, stale_before),
    )
    return {bytes(r[0]): int(r[1]) for r in rows}


class SqliteLiveSessions:
    """:class:`~chatd.store.contract.LiveSessionStore` on SQLite."""

    def __init__(self, ctx: SqliteContext) -> None:
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
        await self._ctx.write(
            "end_node_sessions",
            lambda conn: conn.execute("DELETE FROM live_sessions WHERE node = ?", (node,)),
            keeps_conversation_cache=True,
        )

    async def live_session_counts(self, user_id: int, stale_before: int) -> dict[bytes, int]:
        async with self._ctx.read("read_live_sessions") as conn:
            return await live_counts_txn(conn, user_id, stale_before)
