"""SCAFFOLD: the PostgreSQL chain_reads part, to be written (mirrors chatd/store/sqlite/chain_reads.py)."""

from __future__ import annotations

from typing import Any


async def all_heads_txn(conn: aiosqlite.Connection) -> dict[str, Head]:
    raise NotImplementedError("postgres chain_reads.all_heads_txn")


async def admin_audit_head_txn(conn: aiosqlite.Connection) -> dict[str, Head]:
    raise NotImplementedError("postgres chain_reads.admin_audit_head_txn")


async def facts_txn(
    conn: aiosqlite.Connection, heads: Mapping[str, Head]
) -> tuple[dict[str, bytes], dict[str, int]]:
    raise NotImplementedError("postgres chain_reads.facts_txn")


class PostgresChainReads:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def all_heads(self) -> dict[str, Head]:
        raise NotImplementedError("postgres chain_reads.all_heads")

    async def admin_audit_head(self) -> dict[str, Head]:
        raise NotImplementedError("postgres chain_reads.admin_audit_head")

    async def facts(self, heads: Mapping[str, Head]) -> tuple[dict[str, bytes], dict[str, int]]:
        raise NotImplementedError("postgres chain_reads.facts")

    async def schema_version(self) -> int:
        raise NotImplementedError("postgres chain_reads.schema_version")

    async def has_history(self) -> bool:
        raise NotImplementedError("postgres chain_reads.has_history")
