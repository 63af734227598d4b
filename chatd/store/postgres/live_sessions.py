"""SCAFFOLD: the PostgreSQL live_sessions part, to be written (mirrors chatd/store/sqlite/live_sessions.py)."""

from __future__ import annotations

from typing import Any


async def open_live_session_txn(
    conn: aiosqlite.Connection, session: LiveSession, cap: int, stale_before: int
) -> bool:
    raise NotImplementedError("postgres live_sessions.open_live_session_txn")


async def close_live_sessions_txn(conn: aiosqlite.Connection, ids: Sequence[str]) -> None:
    raise NotImplementedError("postgres live_sessions.close_live_sessions_txn")


async def refresh_node_txn(conn: aiosqlite.Connection, node: str, now_ms: int) -> None:
    raise NotImplementedError("postgres live_sessions.refresh_node_txn")


async def live_counts_txn(
    conn: aiosqlite.Connection, user_id: int, stale_before: int
) -> dict[bytes, int]:
    raise NotImplementedError("postgres live_sessions.live_counts_txn")


class PostgresLiveSessions:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def open_live_session(self, session: LiveSession, *, cap: int, stale_before: int) -> bool:
        raise NotImplementedError("postgres live_sessions.open_live_session")

    async def close_live_sessions(self, ids: Sequence[str]) -> None:
        raise NotImplementedError("postgres live_sessions.close_live_sessions")

    async def refresh_live_sessions(self, node: str, now_ms: int) -> None:
        raise NotImplementedError("postgres live_sessions.refresh_live_sessions")

    async def end_node_sessions(self, node: str) -> None:
        raise NotImplementedError("postgres live_sessions.end_node_sessions")

    async def live_session_counts(self, user_id: int, stale_before: int) -> dict[bytes, int]:
        raise NotImplementedError("postgres live_sessions.live_session_counts")
