"""Attachment rows on PostgreSQL: record, serve, discard, hand keys to the audit.

The counterpart of :mod:`chatd.store.sqlite.attachments` (the whole story of files, rows and
keys is there): the rows say who uploaded what and which message carries it; each row's data
key is a ``data_keys`` row of scope ``'attachment'``; nothing here touches a file.  Claiming
is the writer's (:mod:`.claims`), the row audit :mod:`.attachment_audit`'s.

**Several nodes at once.**

* *Recording* inserts the key then the row with ``ON CONFLICT DO NOTHING``: of two nodes
  recording one id, the second waits for the first's commit, inserts nothing, and gets the
  :class:`~chatd.core.errors.ConflictError` a reused id gets.
* *Discarding* locks the rows it is asked for (``FOR UPDATE``, by id: one lock order on every
  node), and a row is locked only while it is still unsent and expired — PostgreSQL checks the
  condition again on the row's newest version after waiting for its lock.  So a row claimed by
  a message, or discarded by another node, meanwhile is left alone, and the keys destroyed
  and the rows deleted are exactly those of the ids returned: no id is reported twice, and
  none is deleted without being reported (its file would stay for ever).
* *Sweeping* (:meth:`PostgresAttachments.sweep_attachments`) takes the expired rows a page at
  a time with ``FOR UPDATE SKIP LOCKED``: two nodes sweeping at once split the work instead
  of waiting for each other, and a row a message is claiming at that instant is skipped, to
  be claimed or swept later.
* *Shredding* a conversation's attachments (:func:`shred_attachments_txn`) runs under the
  conversation's head lock (:mod:`.keys`): no message can claim one meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chatd.core.errors import (
    AttachmentArchived,
    AttachmentNotFound,
    ConflictError,
    ThumbnailNotFound,
    UserNotFound,
    ValidationError,
)
from chatd.core.records import AttachmentAccess, AttachmentInfo, AttachmentKey, NewAttachment
from chatd.crypto.attachment_keys import (
    ATTACHMENT_KEY_VERSION,
    ATTACHMENT_SCOPE,
    attachment_scope,
    open_thumbnail,
    seal_file_name,
    seal_thumbnail,
)
from chatd.crypto.envelope import wrap_data_key
from chatd.crypto.row_macs import ATTACHMENTS, RowMacs
from chatd.i18n import N_
from chatd.store.attachment_rows import (
    ATTACHMENT_COLUMNS,
    LIVE_KEY_JOIN,
    attachment_info,
    open_attachment_row,
)
from chatd.store.postgres import log as log_reads
from chatd.store.postgres.attachment_audit import AUDIT_PAGE, audit_page_txn
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection
from chatd.store.postgres.row_macs import columns, row_ok

log = logging.getLogger("chatd.store.attachments")

SWEEP_PAGE = 1000  # rows discarded per transaction by a sweep
DESTROY_KEYS = (
    "UPDATE data_keys SET wrapped = NULL, kek_id = NULL, destroyed_at = $1"
    " WHERE scope = $2 AND scope_id = ANY($3::BIGINT[]) AND destroyed_at IS NULL"
)


# ---------------------------------------------------------------------------- recording


async def insert_attachment_txn(
    conn: Connection, macs: RowMacs, new: NewAttachment, now: int
) -> AttachmentInfo:
    if not new.name or new.size < 0 or new.ttl_ms <= 0 or not new.kind or not new.mime:
        raise ValidationError(N_("The attachment record is incomplete."))
    if not 0 < new.id < 2**63:
        raise ValidationError(N_("The attachment number is not valid."))
    if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", new.uploader) is None:
        raise UserNotFound(user=new.uploader)
    wrapped = wrap_data_key(macs.ring, new.dek, attachment_scope(new.id))
    sealed_name = seal_file_name(new.dek, new.id, new.name)
    thumbnail = None if new.thumbnail is None else seal_thumbnail(new.dek, new.id, new.thumbnail)
    expires_at = now + new.ttl_ms
    covered = (new.id, new.uploader, new.size, new.kind, new.mime, new.width, new.height)
    mac = macs.mac(ATTACHMENTS, (*covered, None, None, expires_at))  # unsent: no reference
    # The id was used before (an attachment, or the destroyed key of a discarded one), maybe
    # by another node an instant ago: nothing is inserted, and the id is refused.
    key_inserted = await conn.fetchval(
        "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING scope_id",
        ATTACHMENT_SCOPE,
        new.id,
        ATTACHMENT_KEY_VERSION,
        wrapped.kek_id,
        wrapped.blob,
        now,
    )
    if key_inserted is None:
        raise ConflictError(N_("This attachment number is already in use."))
    row_inserted = await conn.fetchval(
        "INSERT INTO attachments (id, uploader, created_at, expires_at, size, kind, mime,"
        " name, width, height, thumbnail, mac)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT DO NOTHING RETURNING id",
        new.id,
        new.uploader,
        now,
        expires_at,
        new.size,
        new.kind,
        new.mime,
        sealed_name,
        new.width,
        new.height,
        thumbnail,
        mac,
    )
    if row_inserted is None:  # a row without its key: never made so, refused all the same
        raise ConflictError(N_("This attachment number is already in use."))
    return AttachmentInfo(
        id=new.id,
        uploader=new.uploader,
        kind=new.kind,
        mime=new.mime,
        size=new.size,
        name=new.name,
        width=new.width,
        height=new.height,
        has_thumbnail=thumbnail is not None,
        created_at=now,
        expires_at=expires_at,
        conv_id=None,
        seq=None,
    )


# ---------------------------------------------------------------------------- reading


async def find_for_user_txn(
    conn: Connection,
    macs: RowMacs,
    user_id: int,
    attachment_id: int,
    now: int,
    *,
    window_size: int,
    thumbnail: bool,
) -> AttachmentAccess:
    thumb_column = "a.thumbnail" if thumbnail else "NULL::BYTEA"
    # The log's visibility predicate reads the user at $1.
    found = await conn.fetchrow(
        f"SELECT {ATTACHMENT_COLUMNS}, k.kek_id, k.wrapped, {thumb_column},"
        f" {columns(ATTACHMENTS, 'a')} FROM attachments a {LIVE_KEY_JOIN}"
        " LEFT JOIN events e ON e.conv_id = a.conv_id AND e.seq = a.seq"
        " WHERE a.id = $2 AND ("
        "  (a.conv_id IS NULL AND a.uploader = $1 AND a.expires_at > $3)"
        f"  OR (a.conv_id IS NOT NULL AND {log_reads.VISIBLE} AND NOT EXISTS (SELECT 1 FROM"
        "   conversations c WHERE c.id = a.conv_id AND c.shredded_at IS NOT NULL)))",
        user_id,
        attachment_id,
        now,
    )
    if found is None:
        raise AttachmentNotFound()
    row = tuple(found)
    # A row someone edited (its type, its size, its message) is served to nobody: the
    # download is refused as for an attachment that does not exist.
    if not row_ok(macs, ATTACHMENTS, row[16:-1], row[-1], f"attachment {row[0]}"):
        raise AttachmentNotFound()
    info_conv, info_seq = row[11], row[12]
    if info_conv is not None:
        start, _ = await log_reads.window_start_txn(conn, user_id, int(info_conv), window_size)
        if int(info_seq) < start:
            raise AttachmentArchived()
    dek, name = open_attachment_row(macs.ring, row, row[13], row[14])
    info = attachment_info(row, name)
    sealed_thumb = row[15]
    if thumbnail:
        if sealed_thumb is None:
            raise ThumbnailNotFound()
        return AttachmentAccess(info, dek, open_thumbnail(dek, info.id, bytes(sealed_thumb)))
    return AttachmentAccess(info, dek)


# ---------------------------------------------------------------------------- discarding


async def expired_txn(conn: Connection, now: int, limit: int) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM attachments WHERE conv_id IS NULL AND expires_at <= $1"
        " ORDER BY expires_at, id LIMIT $2",
        now,
        limit,
    )
    return [int(r[0]) for r in rows]


async def discard_locked_txn(conn: Connection, doomed: list[int], now: int) -> list[int]:
    """Destroy the keys of ``doomed`` and delete their rows (locked by the caller)."""
    if doomed:
        await conn.execute(DESTROY_KEYS, now, ATTACHMENT_SCOPE, doomed)
        await conn.execute("DELETE FROM attachments WHERE id = ANY($1::BIGINT[])", doomed)
    return doomed


async def discard_txn(conn: Connection, ids: Sequence[int], now: int) -> list[int]:
    """Delete the rows of ``ids`` still unsent and expired, destroying their keys."""
    rows = await conn.fetch(
        "SELECT id FROM attachments WHERE id = ANY($1::BIGINT[]) AND conv_id IS NULL"
        " AND expires_at <= $2 ORDER BY id FOR UPDATE",
        sorted(set(ids)),
        now,
    )
    return await discard_locked_txn(conn, [int(r[0]) for r in rows], now)


async def sweep_page_txn(conn: Connection, now: int, limit: int) -> list[int]:
    """Discard up to ``limit`` expired rows no other transaction holds (see the module)."""
    rows = await conn.fetch(
        "SELECT id FROM attachments WHERE conv_id IS NULL AND expires_at <= $1"
        " ORDER BY expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",  # attachments_unsent
        now,
        limit,
    )
    return await discard_locked_txn(conn, [int(r[0]) for r in rows], now)


async def shred_attachments_txn(conn: Connection, conv_id: int, now: int) -> list[int]:
    """Destroy the keys of the conversation's attachments (retention); their ids.  The
    caller holds the conversation's head lock, so no message claims one meanwhile."""
    rows = await conn.fetch(
        "SELECT id FROM attachments WHERE conv_id = $1 ORDER BY id FOR UPDATE", conv_id
    )
    ids = [int(r[0]) for r in rows]
    if ids:
        await conn.execute(DESTROY_KEYS, now, ATTACHMENT_SCOPE, ids)
    return ids


# ---------------------------------------------------------------------------- the contract


class PostgresAttachments:
    """:class:`~chatd.store.contract.AttachmentRows` on PostgreSQL.

    Recording, discarding and auditing touch no conversation state: every job keeps the
    writer's conversation cache."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx

    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo:
        ctx = self._ctx

        async def run(conn: Connection) -> AttachmentInfo:
            return await insert_attachment_txn(conn, ctx.row_macs, new, ctx.clock_ms())

        return await ctx.write(
            "record_attachment",
            run,
            keeps_conversation_cache=True,  # an upload touches no conversation
        )

    async def attachment_for_user(
        self, user_id: int, attachment_id: int, *, thumbnail: bool = False
    ) -> AttachmentAccess:
        ctx = self._ctx
        async with ctx.read("read_attachment") as conn:
            return await find_for_user_txn(
                conn,
                ctx.row_macs,
                user_id,
                attachment_id,
                ctx.clock_ms(),
                window_size=ctx.window_size,
                thumbnail=thumbnail,
            )

    async def expired_attachments(self, now_ms: int, limit: int = 1000) -> list[int]:
        async with self._ctx.read("read_expired_attachments") as conn:
            return await expired_txn(conn, now_ms, limit)

    async def discard_attachments(self, attachment_ids: Sequence[int], now_ms: int) -> list[int]:
        async def run(conn: Connection) -> list[int]:
            return await discard_txn(conn, attachment_ids, now_ms)

        return await self._ctx.write(
            "discard_attachments",
            run,
            keeps_conversation_cache=True,  # only unsent uploads: no conversation changes
        )

    async def sweep_attachments(self, now_ms: int) -> list[int]:
        """Discard every attachment expired at ``now_ms`` that no other node is sweeping or
        a message is claiming at this instant; the ids discarded, each by one node only."""
        swept: list[int] = []

        async def run(conn: Connection) -> list[int]:
            return await sweep_page_txn(conn, now_ms, SWEEP_PAGE)

        while page := await self._ctx.write(
            "sweep_attachments", run, keeps_conversation_cache=True
        ):
            swept.extend(page)
        return swept

    async def attachment_keys(self, after: int = 0, limit: int = AUDIT_PAGE) -> list[AttachmentKey]:
        ctx = self._ctx
        async with ctx.read("read_attachment_keys") as conn:
            verdicts = await audit_page_txn(conn, ctx.keys.ring, after, limit)
        # A row that fails the row audit gives no key: its problem is the row audit's.
        return [
            AttachmentKey(v.id, v.conv_id, v.seq, v.size, None, v.shredded)
            if v.problem is not None
            else v.key()
            for v in verdicts
        ]

    async def live_attachments(self, attachment_ids: Sequence[int]) -> set[int]:
        async with self._ctx.read("read_live_attachments") as conn:
            rows = await conn.fetch(
                f"SELECT a.id FROM attachments a {LIVE_KEY_JOIN} WHERE a.id = ANY($1::BIGINT[])",
                sorted(set(attachment_ids)),
            )
        return {int(r[0]) for r in rows}
