"""SCAFFOLD: the PostgreSQL inbox part, to be written (mirrors chatd/store/sqlite/inbox.py)."""

from __future__ import annotations

from typing import Any


def unread_sql(conv: str, read_seq: str, top: str) -> str:
    raise NotImplementedError("postgres inbox.unread_sql")


async def top_txn(conn: aiosqlite.Connection, user_id: int, conv_id: int) -> int:
    raise NotImplementedError("postgres inbox.top_txn")


async def mark_read_txn(
    conn: aiosqlite.Connection, user_id: int, conv_id: int, seq: int, *, now: int, cap: int
) -> ReadState:
    raise NotImplementedError("postgres inbox.mark_read_txn")


async def inbox_txn(
    conn: aiosqlite.Connection, user_id: int, keys: DataKeys, *, cap: int
) -> list[InboxRow]:
    raise NotImplementedError("postgres inbox.inbox_txn")


class PostgresInbox:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def mark_read(self, user_id: int, conv_id: int, seq: int) -> ReadState:
        raise NotImplementedError("postgres inbox.mark_read")

    async def inbox(self, user_id: int) -> list[InboxRow]:
        raise NotImplementedError("postgres inbox.inbox")
