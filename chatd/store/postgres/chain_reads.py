"""What the checkpointer reads from PostgreSQL: the heads of every chain, the heads changed
since a watermark, and the facts that say whether the database extends a checkpoint
(:class:`chatd.store.checkpointer.ChainReads`).

As on SQLite, the facts come from the rows themselves — the event (or audit record) at the
checkpointed seq — not from ``conversations.last_seq``/``last_hash``, which whoever rewrites
the database can rewrite to match a cut log.  Each read is one snapshot.

:func:`changed_heads_txn` is the cluster's feed (SQLite's writer hands its heads over
instead): every head change of every node bumps ``conversations.head_version`` (a trigger,
from a sequence), so the node that takes the checkpoints reads ``WHERE head_version > $1``.
It also returns the snapshot's bounds, from which :mod:`.history` decides how far the
watermark may move (sequence values are not taken in commit order).  The store epoch is read
and written here too: a checkpoint names it, and ``chatd verify`` compares the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chatd.core.checkpoints import (
    ADMIN_AUDIT_CHAIN,
    Head,
    chain_conversation,
    conversation_chain,
)
from chatd.core.errors import DatabaseDamaged
from chatd.i18n import N_
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection

BATCH = 5000  # chains per query: arrays, so no parameter limit, but bounded replies


@dataclass(frozen=True, slots=True)
class Changes:
    """The heads changed after a watermark, as one snapshot saw them."""

    heads: dict[int, tuple[int, bytes]]  # conv_id → (last_seq, last_hash)
    top: int  # the highest head_version seen (the watermark if none above it)
    xmin: int  # every transaction below it had ended when the snapshot was taken
    xmax: int  # every transaction that had ended by then is below it
    epoch: str | None  # the store epoch in the same snapshot


async def all_heads_txn(conn: Connection) -> dict[str, Head]:
    heads = {
        conversation_chain(int(r["id"])): Head(int(r["last_seq"]), bytes(r["last_hash"]))
        for r in await conn.fetch(
            "SELECT id, last_seq, last_hash FROM conversations WHERE last_seq > 0 ORDER BY id"
        )
    }
    return heads | await admin_audit_head_txn(conn)


async def admin_audit_head_txn(conn: Connection) -> dict[str, Head]:
    row = await conn.fetchrow("SELECT seq, hash FROM admin_audit ORDER BY seq DESC LIMIT 1")
    return {ADMIN_AUDIT_CHAIN: Head(int(row["seq"]), bytes(row["hash"]))} if row else {}


async def changed_heads_txn(conn: Connection, since: int) -> Changes:
    """The heads whose ``head_version`` is above ``since``.  The snapshot's bounds are read
    first, so that they are the bounds of the snapshot the rows come from (a ``REPEATABLE
    READ`` transaction takes its snapshot at its first statement)."""
    bounds = await conn.fetchrow(
        "SELECT pg_snapshot_xmin(s)::text::bigint AS xmin,"
        " pg_snapshot_xmax(s)::text::bigint AS xmax FROM pg_current_snapshot() AS s"
    )
    assert bounds is not None
    rows = await conn.fetch(
        "SELECT id, last_seq, last_hash, head_version FROM conversations"
        " WHERE head_version > $1 ORDER BY id",
        since,
    )
    epoch = await conn.fetchval("SELECT epoch FROM store_epoch WHERE id = 1")
    return Changes(
        heads={
            int(r["id"]): (int(r["last_seq"]), bytes(r["last_hash"]))
            for r in rows
            if r["last_seq"] > 0
        },
        top=max([since, *(int(r["head_version"]) for r in rows)]),
        xmin=int(bounds["xmin"]),
        xmax=int(bounds["xmax"]),
        epoch=None if epoch is None else str(epoch),
    )


async def facts_txn(
    conn: Connection, heads: Mapping[str, Head]
) -> tuple[dict[str, bytes], dict[str, int]]:
    """The hash at each chain's checkpointed seq, and the last seq of each chain found."""
    at: dict[str, bytes] = {}
    last: dict[str, int] = {}
    convs = [(c, h.seq) for chain, h in heads.items() if (c := chain_conversation(chain))]
    for i in range(0, len(convs), BATCH):
        batch = convs[i : i + BATCH]
        ids, seqs = [c for c, _ in batch], [s for _, s in batch]
        for r in await conn.fetch(
            "SELECT e.conv_id, e.hash FROM unnest($1::bigint[], $2::bigint[]) AS h(conv_id, seq)"
            " JOIN events e ON e.conv_id = h.conv_id AND e.seq = h.seq",
            ids,
            seqs,
        ):
            at[conversation_chain(int(r["conv_id"]))] = bytes(r["hash"])
        # One index probe per chain (the primary key's last entry), not a scan of the log.
        for r in await conn.fetch(
            "SELECT c.conv_id, (SELECT MAX(seq) FROM events e WHERE e.conv_id = c.conv_id)"
            " AS last FROM unnest($1::bigint[]) AS c(conv_id)",
            ids,
        ):
            if r["last"] is not None:
                last[conversation_chain(int(r["conv_id"]))] = int(r["last"])
    audit = heads.get(ADMIN_AUDIT_CHAIN)
    if audit is not None:
        digest = await conn.fetchval("SELECT hash FROM admin_audit WHERE seq = $1", audit.seq)
        if digest is not None:
            at[ADMIN_AUDIT_CHAIN] = bytes(digest)
        top = await conn.fetchval("SELECT MAX(seq) FROM admin_audit")
        if top is not None:
            last[ADMIN_AUDIT_CHAIN] = int(top)
    return at, last


# PostgreSQL's migration 1 is SQLite's 1-11 at once, and the two change together from there
# (a migration in each): a checkpoint names the schema on SQLite's scale, so that a database
# moved from SQLite (``chatd migrate-to``, its log with it) is not "behind" its own log.
SQLITE_SCALE = 10


async def schema_version_txn(conn: Connection) -> int:
    """The schema's version as checkpoints name it (SQLite's numbering)."""
    version = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
    return version + SQLITE_SCALE if version else 0


class PostgresChainReads:
    """The :class:`~chatd.store.checkpointer.ChainReads` of a PostgreSQL store."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx

    async def all_heads(self) -> dict[str, Head]:
        async with self._ctx.read("read_chain_heads") as conn:
            return await all_heads_txn(conn)

    async def admin_audit_head(self) -> dict[str, Head]:
        async with self._ctx.read("read_admin_audit_head") as conn:
            return await admin_audit_head_txn(conn)

    async def changed_heads(self, since: int) -> Changes:
        async with self._ctx.read("read_changed_heads") as conn:
            return await changed_heads_txn(conn, since)

    async def facts(self, heads: Mapping[str, Head]) -> tuple[dict[str, bytes], dict[str, int]]:
        async with self._ctx.read("read_checkpoint_facts") as conn:
            return await facts_txn(conn, heads)

    async def schema_version(self) -> int:
        async with self._ctx.read("read_schema_version") as conn:
            return await schema_version_txn(conn)

    async def has_history(self) -> bool:
        async with self._ctx.read("read_has_history") as conn:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM admin_audit)"
                )
            )


async def read_epoch_txn(conn: Connection) -> str:
    epoch = await conn.fetchval("SELECT epoch FROM store_epoch WHERE id = 1")
    if not isinstance(epoch, str):
        # Migration 1 made the row and a trigger keeps it: only a damaged database lacks it.
        raise DatabaseDamaged(N_("database damaged: {reason}"), reason="no store epoch")
    return epoch


async def write_epoch_txn(conn: Connection, epoch: str, now_ms: int) -> None:
    await conn.execute(
        "UPDATE store_epoch SET epoch = $1, declared_at = $2 WHERE id = 1", epoch, now_ms
    )
