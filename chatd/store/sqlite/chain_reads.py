"""What the checkpointer reads from SQLite: the heads of every chain, and the facts that say
whether the database extends a checkpoint (:class:`chatd.store.checkpointer.ChainReads`).

The facts come from the rows themselves — the event (or audit record) at the checkpointed
seq — not from ``conversations.last_seq``/``last_hash``, which whoever rewrites the file can
rewrite to match a cut log.  They are read in batches of row values, one snapshot for all.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiosqlite

from chatd.core.checkpoints import (
    ADMIN_AUDIT_CHAIN,
    Head,
    chain_conversation,
    conversation_chain,
)
from chatd.store.sqlite.context import SqliteContext

BATCH = 400  # pairs per query: 800 parameters, well under SQLite's limit


async def all_heads_txn(conn: aiosqlite.Connection) -> dict[str, Head]:
    heads = {
        conversation_chain(int(conv_id)): Head(int(seq), bytes(digest))
        for conv_id, seq, digest in await conn.execute_fetchall(
            "SELECT id, last_seq, last_hash FROM conversations WHERE last_seq > 0 ORDER BY id"
        )
    }
    return heads | await admin_audit_head_txn(conn)


async def admin_audit_head_txn(conn: aiosqlite.Connection) -> dict[str, Head]:
    rows = list(
        await conn.execute_fetchall("SELECT seq, hash FROM admin_audit ORDER BY seq DESC LIMIT 1")
    )
    return {ADMIN_AUDIT_CHAIN: Head(int(rows[0][0]), bytes(rows[0][1]))} if rows else {}


async def facts_txn(
    conn: aiosqlite.Connection, heads: Mapping[str, Head]
) -> tuple[dict[str, bytes], dict[str, int]]:
    """The hash at each chain's checkpointed seq, and the last seq of each chain found."""
    at: dict[str, bytes] = {}
    last: dict[str, int] = {}
    convs = [(c, h.seq) for chain, h in heads.items() if (c := chain_conversation(chain))]
    for i in range(0, len(convs), BATCH):
        batch = convs[i : i + BATCH]
        values = ",".join("(?, ?)" for _ in batch)
        params = [x for pair in batch for x in pair]
        for conv_id, digest in await conn.execute_fetchall(
            f"SELECT conv_id, hash FROM events WHERE (conv_id, seq) IN (VALUES {values})",
            params,
        ):
            at[conversation_chain(int(conv_id))] = bytes(digest)
        ids = ",".join("?" for _ in batch)
        for conv_id, seq in await conn.execute_fetchall(
            f"SELECT conv_id, MAX(seq) FROM events WHERE conv_id IN ({ids}) GROUP BY conv_id",
            [c for c, _ in batch],
        ):
            last[conversation_chain(int(conv_id))] = int(seq)
    audit = heads.get(ADMIN_AUDIT_CHAIN)
    if audit is not None:
        rows = list(
            await conn.execute_fetchall("SELECT hash FROM admin_audit WHERE seq = ?", (audit.seq,))
        )
        if rows:
            at[ADMIN_AUDIT_CHAIN] = bytes(rows[0][0])
        rows = list(await conn.execute_fetchall("SELECT MAX(seq) FROM admin_audit"))
        if rows and rows[0][0] is not None:
            last[ADMIN_AUDIT_CHAIN] = int(rows[0][0])
    return at, last


class SqliteChainReads:
    """The :class:`~chatd.store.checkpointer.ChainReads` of a SQLite store."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx

    async def all_heads(self) -> dict[str, Head]:
        async with self._ctx.read("read_chain_heads") as conn:
            return await all_heads_txn(conn)

    async def admin_audit_head(self) -> dict[str, Head]:
        async with self._ctx.read("read_admin_audit_head") as conn:
            return await admin_audit_head_txn(conn)

    async def facts(self, heads: Mapping[str, Head]) -> tuple[dict[str, bytes], dict[str, int]]:
        async with self._ctx.read("read_checkpoint_facts") as conn:
            return await facts_txn(conn, heads)

    async def schema_version(self) -> int:
        async with self._ctx.read("read_schema_version") as conn:
            rows = list(await conn.execute_fetchall("SELECT MAX(version) FROM schema_migrations"))
        return int(rows[0][0] or 0)

    async def has_history(self) -> bool:
        async with self._ctx.read("read_has_history") as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM admin_audit)"
                )
            )
        return bool(rows[0][0])
