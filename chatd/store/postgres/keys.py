"""Data keys and retention on PostgreSQL: KEK rotation, keys in use, crypto-shredding.

The counterpart of :mod:`chatd.store.sqlite.keys`: rotation re-wraps every live
``data_keys`` row (conversations, the directory, attachments) under the new active KEK and
re-MACs every authenticated row (:func:`.row_macs.remac_all_txn`) in one transaction;
shredding destroys a conversation's keys and its attachments' keys in one, and reports the
attachment ids, whose files the attachment service then removes.  Each records the
administrator's action, when given, in the same transaction (:mod:`.audit`).

**Other nodes write at the same time**, so each job takes the locks that make it right:

* *Shredding* locks the conversation's head row first (``SELECT … FOR UPDATE``).  Every
  append locks the same row (:func:`.batch.lock_heads_txn`, ``FOR UPDATE``; the
  ``events_refuse_shredded`` trigger reads it ``FOR SHARE``), so a shred and an append are
  serialised: an append that committed first is in the chain before the keys go; one that
  waits sees ``shredded_at`` once it gets the lock.  The writer of *any* node must therefore
  decide from the head it locked — ``shredded_at IS NOT NULL`` refuses the operation and
  drops whatever data key it cached for the conversation — never from its cache alone (the
  shred forgets the key only in this node's :class:`~chatd.store.data_keys.DataKeys`).  The
  trigger refuses an event of a shredded conversation in any case.
* *Rotation* locks the live data keys it re-wraps (``FOR UPDATE``, in primary-key order) and
  updates only those still live: a shred that committed first is skipped (a destroyed key
  stays destroyed: the ``data_keys_no_resurrection`` trigger), one that comes later waits
  for the rotation's commit.  A data key inserted meanwhile by a node still on the old ring
  stays under the old KEK, and :meth:`PostgresKeys.kek_ids_in_use` reports it, so the old
  KEK cannot be retired while anything needs it.

Both drop this node's writer cache after they commit (the default of
:meth:`PostgresContext.write`): they change keys it holds.
"""

from __future__ import annotations

import logging

from chatd.core.audit import AdminAction
from chatd.core.errors import ConversationNotFound
from chatd.crypto.envelope import KeyScope, WrappedKey
from chatd.crypto.keyring import KeyRing
from chatd.crypto.row_macs import RowMacs, kid_tag
from chatd.store.data_keys import CONV_SCOPE, DataKeys
from chatd.store.postgres.attachments import shred_attachments_txn
from chatd.store.postgres.audit import append_admin_action_txn
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection
from chatd.store.postgres.row_macs import mac_tags_in_use_txn, remac_all_txn

log = logging.getLogger("chatd.store")


async def rewrap_all_txn(conn: Connection, keys: DataKeys) -> int:
    """Re-wrap every live data key under the active KEK of ``keys``; how many."""
    rows = await conn.fetch(
        "SELECT scope, scope_id, version, kek_id, wrapped FROM data_keys"
        " WHERE destroyed_at IS NULL ORDER BY scope, scope_id, version FOR UPDATE"
    )
    updates = []
    for scope, scope_id, version, kek_id, blob in rows:
        new = keys.rewrap(WrappedKey(kek_id, bytes(blob)), KeyScope(scope, scope_id, version))
        updates.append((new.kek_id, new.blob, scope, scope_id, version))
    await conn.executemany(
        "UPDATE data_keys SET kek_id = $1, wrapped = $2 WHERE scope = $3 AND scope_id = $4"
        " AND version = $5 AND destroyed_at IS NULL",
        updates,
    )
    return len(updates)


async def destroy_conversation_keys_txn(conn: Connection, conv_id: int, now: int) -> None:
    """Destroy the conversation's own data keys (every version still live)."""
    await conn.execute(
        "UPDATE data_keys SET wrapped = NULL, kek_id = NULL, destroyed_at = $1"
        " WHERE scope = $2 AND scope_id = $3 AND destroyed_at IS NULL",
        now,
        CONV_SCOPE,
        conv_id,
    )


class PostgresKeys:
    """The keys and retention part of :class:`~chatd.store.contract.KeyStore` on
    PostgreSQL (the row audit is :mod:`.verify`)."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx

    async def rewrap_data_keys(self, ring: KeyRing, *, audit: AdminAction | None = None) -> int:
        ctx = self._ctx

        async def run(conn: Connection) -> int:
            ctx.keys.replace_ring(ring)
            count = await rewrap_all_txn(conn, ctx.keys)
            # Every authenticated row under the new KEK too, so that the old one can go.
            remade, kept = await remac_all_txn(conn, RowMacs(ring))
            if kept:
                log.error("rotation: %d rows failed their MAC check and keep their MAC", kept)
            log.info("rotation: %d data keys re-wrapped, %d rows re-MAC'd", count, remade)
            if audit is not None:
                done = audit.with_target(ring.active_id).with_counts(data_keys=count)
                await append_admin_action_txn(conn, ctx.keys, done, ctx.clock_ms())
            return count

        return await ctx.write("rewrap_data_keys", run)

    async def kek_ids_in_use(self) -> set[str]:
        async with self._ctx.read("read_kek_ids") as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT kek_id FROM data_keys WHERE destroyed_at IS NULL"
            )
        return {str(r[0]) for r in rows}

    async def row_mac_kek_ids(self) -> set[str]:
        async with self._ctx.read("read_row_mac_keys") as conn:
            tags = await mac_tags_in_use_txn(conn)
        known = {kid_tag(kid): kid for kid in self._ctx.keys.ring.keys}
        return {known.get(tag, tag.hex()) for tag in tags}

    async def expired_conversations(self, last_event_before_ms: int) -> list[int]:
        async with self._ctx.read("read_expired_conversations") as conn:
            rows = await conn.fetch(
                "SELECT id FROM conversations WHERE shredded_at IS NULL AND last_event_at < $1"
                " ORDER BY id",
                last_event_before_ms,
            )
        return [int(r[0]) for r in rows]

    async def shred_conversation(
        self, conv_id: int, *, audit: AdminAction | None = None
    ) -> list[int]:
        ctx = self._ctx

        async def run(conn: Connection) -> list[int]:
            now = ctx.clock_ms()
            # The head lock every append takes too: appends before, or after and refused.
            row = await conn.fetchrow(
                "SELECT shredded_at FROM conversations WHERE id = $1 FOR UPDATE", conv_id
            )
            if row is None:
                raise ConversationNotFound(conv=conv_id)
            newly_shredded = row["shredded_at"] is None
            if newly_shredded:
                await conn.execute(
                    "UPDATE conversations SET shredded_at = $1 WHERE id = $2", now, conv_id
                )
            else:
                now = int(row["shredded_at"])  # a retry finishes with the first shred's time
            await destroy_conversation_keys_txn(conn, conv_id, now)
            ctx.keys.forget(CONV_SCOPE, conv_id)
            attachments = await shred_attachments_txn(conn, conv_id, now)
            if audit is not None and newly_shredded:
                done = audit.with_target(str(conv_id)).with_counts(attachments=len(attachments))
                await append_admin_action_txn(conn, ctx.keys, done, now)
            return attachments

        shredded = await ctx.write("shred_conversation", run)
        # Again after COMMIT: a read of this node may have cached the key meanwhile.
        ctx.keys.forget(CONV_SCOPE, conv_id)
        return shredded
