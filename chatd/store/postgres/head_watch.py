"""The heads that moved, on PostgreSQL: ``head_version`` above a watermark that lags.

Every node appends here, and another node's commits never pass through this process, so
the watch reads the database: every head change bumps ``conversations.head_version`` (a
trigger, from the sequence ``head_versions``, :mod:`.migration_1`), and the watch reads the
rows above its watermark (:func:`.chain_reads.changed_heads_txn`, one snapshot with its
bounds).  The watermark moves as the checkpointer's does (:class:`.history.Watermark`):
sequence values do not commit in the order they are drawn, so it only passes a value once
every transaction that could still commit below it has ended.  The price is that the rows
moved in the last :data:`MARGIN_S` seconds are read again at each look; the caller drops
the conversations it already has (it compares seqs).

The margin is shorter than the checkpointer's: the writer draws a head's version after its
``SELECT … FOR UPDATE`` gave its transaction an id, so the snapshot rule (a) alone already
covers its transactions, and a transaction stalled past the margin would only be missed by
this watch, the broker's fallback, not by the broker.  There is no full read either: a new
watch starts from the highest version now, since what committed before it is what a
session reads when it connects or resumes.

The store epoch is read in the same snapshot: if an operator declared a new one, the seqs
the caller holds belong to the old history, so the watch says so in the log and starts
again from the current heads.
"""

from __future__ import annotations

import logging
import math

from chatd.store.postgres.chain_reads import changed_heads_txn, read_epoch_txn
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.history import Watermark

log = logging.getLogger("chatd.store")

MARGIN_S = 5.0


class PostgresHeadWatch:
    def __init__(self, ctx: PostgresContext, since: int, epoch: str | None) -> None:
        self._ctx = ctx
        self._epoch = epoch
        self._watermark = Watermark(margin_s=MARGIN_S, full_read_s=math.inf)
        self._watermark.since = since

    @classmethod
    async def start(cls, ctx: PostgresContext) -> PostgresHeadWatch:
        async with ctx.read("read_head_version") as conn:
            top = await conn.fetchval("SELECT COALESCE(MAX(head_version), 0) FROM conversations")
            epoch = await read_epoch_txn(conn)
        return cls(ctx, int(top), epoch)

    async def moved(self) -> dict[int, int]:
        async with self._ctx.read("read_moved_heads") as conn:
            changes = await changed_heads_txn(conn, self._watermark.since)
        if changes.epoch != self._epoch:
            log.warning("the store epoch changed: the head watch starts again from now")
            again = await self.start(self._ctx)
            self._epoch, self._watermark = again._epoch, again._watermark
            return {}
        self._watermark.seen(changes)
        return {conv_id: last_seq for conv_id, (last_seq, _) in changes.heads.items()}
