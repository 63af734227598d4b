"""SCAFFOLD: the PostgreSQL heads part, to be written (mirrors chatd/store/sqlite/heads.py)."""

from __future__ import annotations

from typing import Any


def _chunk_sql(count: int) -> str:
    raise NotImplementedError("postgres heads._chunk_sql")


async def chain_views_txn(
    conn: aiosqlite.Connection, user_id: int, positions: Sequence[tuple[int, int]]
) -> list[ChainView]:
    raise NotImplementedError("postgres heads.chain_views_txn")
