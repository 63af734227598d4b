"""Data keys and retention on SQLite: KEK rotation, keys in use, crypto-shredding.

Rotation re-wraps every live ``data_keys`` row (conversations, the directory, attachments)
under the new active KEK, and re-MACs every authenticated row (:mod:`.row_macs`), in one
exclusive job; shredding destroys a conversation's keys and
its attachments' keys in one, and reports the attachment ids, whose files the attachment
service then removes.  Each records the administrator's action, when given, in its own
transaction (:mod:`.audit`).  Both drop the writer's conversation cache (the default of
:meth:`SqliteContext.write`): they change keys it holds.
"""

from __future__ import annotations

import logging

import aiosqlite

from chatd.core.audit import AdminAction
from chatd.core.errors import ConversationNotFound
from chatd.crypto.envelope import KeyScope, WrappedKey
from chatd.crypto.keyring import KeyRing
from chatd.crypto.row_macs import RowMacs, kid_tag
from chatd.store.data_keys import CONV_SCOPE
from chatd.store.sqlite.attachments import shred_attachments_txn
from chatd.store.sqlite.audit import append_admin_action_txn
from chatd.store.sqlite.context import SqliteContext
from chatd.store.sqlite.row_macs import mac_tags_in_use_txn, remac_all_txn

log = logging.getLogger("chatd.store")


class SqliteKeys:
    """The keys and retention part of :class:`~chatd.store.contract.KeyStore` on SQLite
    (the row audit is :mod:`.verify`)."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx

    async def rewrap_data_keys(self, ring: KeyRing, *, audit: AdminAction | None = None) -> int:
        ctx = self._ctx
        keys = ctx.keys

        async def run(conn: aiosqlite.Connection) -> int:
            keys.replace_ring(ring)
            rows = await conn.execute_fetchall(
                "SELECT scope, scope_id, version, kek_id, wrapped FROM data_keys"
                " WHERE destroyed_at IS NULL"
            )
            updates = []
            for scope, scope_id, version, kek_id, blob in rows:
                new = keys.rewrap(WrappedKey(kek_id, blob), KeyScope(scope, scope_id, version))
                updates.append((new.kek_id, new.blob, scope, scope_id, version))
            await conn.executemany(
                "UPDATE data_keys SET kek_id = ?, wrapped = ? WHERE scope = ? AND scope_id = ?"
                " AND version = ?",
                updates,
            )
            # Every authenticated row under the new KEK too, so that the old one can go.
            remade, kept = await remac_all_txn(conn, RowMacs(ring))
            if kept:
                log.error("rotation: %d rows failed their MAC check and keep their MAC", kept)
            log.info("rotation: %d data keys re-wrapped, %d rows re-MAC'd", len(updates), remade)
            if audit is not None:
                done = audit.with_target(ring.active_id).with_counts(data_keys=len(updates))
                await append_admin_action_txn(conn, ctx.keys, done, ctx.clock_ms())
            return len(updates)

        return await ctx.write("rewrap_data_keys", run)

    async def kek_ids_in_use(self) -> set[str]:
        async with self._ctx.read("read_kek_ids") as conn:
            rows = await conn.execute_fetchall(
                "SELECT DISTINCT kek_id FROM data_keys WHERE destroyed_at IS NULL"
            )
        return {str(r[0]) for r in rows}

    async def row_mac_kek_ids(self) -> set[str]:
        tags = set()
        async with self._ctx.read("read_row_mac_keys") as conn:
            tags = await mac_tags_in_use_txn(conn)
        known = {kid_tag(kid): kid for kid in self._ctx.keys.ring.keys}
        return {known.get(tag, tag.hex()) for tag in tags}

    async def expired_conversations(self, last_event_before_ms: int) -> list[int]:
        async with self._ctx.read("read_expired_conversations") as conn:
            rows = await conn.execute_fetchall(
                "SELECT id FROM conversations WHERE shredded_at IS NULL AND last_event_at < ?"
                " ORDER BY id",
                (last_event_before_ms,),
            )
        return [int(r[0]) for r in rows]

    async def shred_conversation(
        self, conv_id: int, *, audit: AdminAction | None = None
    ) -> list[int]:
        ctx = self._ctx

        async def run(conn: aiosqlite.Connection) -> list[int]:
            now = ctx.clock_ms()
            cursor = await conn.execute(
                "UPDATE conversations SET shredded_at = ? WHERE id = ? AND shredded_at IS NULL",
                (now, conv_id),
            )
            newly_shredded = cursor.rowcount == 1
            if not newly_shredded:
                exists = list(
                    await conn.execute_fetchall(
                        "SELECT 1 FROM conversations WHERE id = ?", (conv_id,)
                    )
                )
                if not exists:
                    raise ConversationNotFound(conv=conv_id)
            await conn.execute(
                "UPDATE data_keys SET wrapped = NULL, kek_id = NULL, destroyed_at = ?"
                " WHERE scope = ? AND scope_id = ? AND destroyed_at IS NULL",
                (now, CONV_SCOPE, conv_id),
            )
            ctx.keys.forget(CONV_SCOPE, conv_id)
            attachments = await shred_attachments_txn(conn, conv_id, now)
            if audit is not None and newly_shredded:
                done = audit.with_target(str(conv_id)).with_counts(attachments=len(attachments))
                await append_admin_action_txn(conn, ctx.keys, done, now)
            return attachments

        return await ctx.write("shred_conversation", run)
