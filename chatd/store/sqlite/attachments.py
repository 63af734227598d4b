"""Attachment rows on SQLite (migration 3): record, serve, discard, hand keys to the audit.

The rows say who uploaded what and which message carries it; the encrypted files are the
attachment service's (:mod:`chatd.services.attachments`), which writes a file *before* asking
the store to record its row — so no row ever points to a missing file — and removes files
after the store reports which rows were discarded or shredded.  Nothing here touches a file.
Each attachment's data key is a ``data_keys`` row of scope ``'attachment'``, so KEK rotation,
``kek_ids_in_use`` and crypto-shredding treat it like any other data key.

**Claiming** (the rules are :mod:`chatd.core.claims`; the SQL, which the writer imports, is
:mod:`.claims`).  The writer loads the attachments a batch refers to with its planning reads;
the planner checks them while it decides; the references are set in the same transaction as
the append.  The triggers of migration 3 refuse a reference by anything but a message of the
uploader appended before expiry, and a second reference.  If another process (``chatd`` admin
commands) discarded or claimed one meanwhile, the batch fails and its callers retry, which
then gives the precise error.

**Reading** (:func:`find_for_user_txn`) applies visibility in the query: a sent attachment is
served to a user who may see its message (:data:`chatd.store.sqlite.log.VISIBLE`) and only
inside their visible window (older: archived); an unsent one only to its uploader.  A shredded
conversation's attachments have no key any more.

**Auditing** is :mod:`.verify`'s (each row's reference, key, sealed name and thumbnail);
:meth:`SqliteAttachments.attachment_keys` hands the file audit the keys of the rows that pass.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

import aiosqlite

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
from chatd.store.sqlite.attachment_audit import AUDIT_PAGE, audit_page_txn
from chatd.store.sqlite.claims import (
    ATTACHMENT_COLUMNS,
    LIVE_KEY_JOIN,
    attachment_info,
    chunks,
    open_attachment_row,
)
from chatd.store.sqlite.context import SqliteContext
from chatd.store.sqlite.log import VISIBLE, window_start_txn
from chatd.store.sqlite.row_macs import columns, row_ok

log = logging.getLogger("chatd.store.attachments")


# ---------------------------------------------------------------------------- recording


async def insert_attachment_txn(
    conn: aiosqlite.Connection, macs: RowMacs, new: NewAttachment, now: int
) -> AttachmentInfo:
    if not new.name or new.size < 0 or new.ttl_ms <= 0 or not new.kind or not new.mime:
        raise ValidationError(N_("The attachment record is incomplete."))
    if not 0 < new.id < 2**63:
        raise ValidationError(N_("The attachment number is not valid."))
    if not list(await conn.execute_fetchall("SELECT 1 FROM users WHERE id = ?", (new.uploader,))):
        raise UserNotFound(user=new.uploader)
    wrapped = wrap_data_key(macs.ring, new.dek, attachment_scope(new.id))
    sealed_name = seal_file_name(new.dek, new.id, new.name)
    thumbnail = None if new.thumbnail is None else seal_thumbnail(new.dek, new.id, new.thumbnail)
    expires_at = now + new.ttl_ms
    covered = (new.id, new.uploader, new.size, new.kind, new.mime, new.width, new.height)
    mac = macs.mac(ATTACHMENTS, (*covered, None, None, expires_at))  # unsent: no reference
    try:
        await conn.execute(
            "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ATTACHMENT_SCOPE, new.id, ATTACHMENT_KEY_VERSION, wrapped.kek_id, wrapped.blob, now),
        )
        await conn.execute(
            "INSERT INTO attachments (id, uploader, created_at, expires_at, size, kind, mime,"
            " name, width, height, thumbnail, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
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
            ),
        )
    except sqlite3.IntegrityError:
        # The id was used before (an attachment, or the destroyed key of a discarded one).
        raise ConflictError(N_("This attachment number is already in use.")) from None
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
    conn: aiosqlite.Connection,
    macs: RowMacs,
    user_id: int,
    attachment_id: int,
    now: int,
    *,
    window_size: int,
    thumbnail: bool,
) -> AttachmentAccess:
    thumb_column = "a.thumbnail" if thumbnail else "NULL"
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {ATTACHMENT_COLUMNS}, k.kek_id, k.wrapped, {thumb_column},"
            f" {columns(ATTACHMENTS, 'a')} FROM attachments a {LIVE_KEY_JOIN}"
            " LEFT JOIN events e ON e.conv_id = a.conv_id AND e.seq = a.seq"
            " WHERE a.id = :id AND ("
            "  (a.conv_id IS NULL AND a.uploader = :user AND a.expires_at > :now)"
            f"  OR (a.conv_id IS NOT NULL AND {VISIBLE} AND NOT EXISTS (SELECT 1 FROM"
            "   conversations c WHERE c.id = a.conv_id AND c.shredded_at IS NOT NULL)))",
            {"id": attachment_id, "user": user_id, "now": now},
        )
    )
    if not rows:
        raise AttachmentNotFound()
    row = rows[0]
    # A row someone edited (its type, its size, its message) is served to nobody: the
    # download is refused as for an attachment that does not exist.
    if not row_ok(macs, ATTACHMENTS, row[16:-1], row[-1], f"attachment {row[0]}"):
        raise AttachmentNotFound()
    info_conv, info_seq = row[11], row[12]
    if info_conv is not None:
        start, _ = await window_start_txn(conn, user_id, int(info_conv), window_size)
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


async def expired_txn(conn: aiosqlite.Connection, now: int, limit: int) -> list[int]:
    rows = await conn.execute_fetchall(
        "SELECT id FROM attachments WHERE conv_id IS NULL AND expires_at <= ?"
        " ORDER BY expires_at LIMIT ?",
        (now, limit),
    )
    return [int(r[0]) for r in rows]


async def discard_txn(conn: aiosqlite.Connection, ids: Sequence[int], now: int) -> list[int]:
    """Delete the rows of ``ids`` still unsent and expired, destroying their keys."""
    gone: list[int] = []
    for chunk in chunks(sorted(set(ids))):
        marks = ",".join("?" * len(chunk))
        rows = await conn.execute_fetchall(
            f"SELECT id FROM attachments WHERE id IN ({marks}) AND conv_id IS NULL"
            " AND expires_at <= ?",
            [*chunk, now],
        )
        doomed = [int(r[0]) for r in rows]
        if not doomed:
            continue
        marks = ",".join("?" * len(doomed))
        await conn.execute(
            "UPDATE data_keys SET wrapped = NULL, kek_id = NULL, destroyed_at = ?"
            f" WHERE scope = ? AND scope_id IN ({marks}) AND destroyed_at IS NULL",
            [now, ATTACHMENT_SCOPE, *doomed],
        )
        await conn.execute(f"DELETE FROM attachments WHERE id IN ({marks})", doomed)
        gone.extend(doomed)
    return gone


async def shred_attachments_txn(conn: aiosqlite.Connection, conv_id: int, now: int) -> list[int]:
    """Destroy the keys of the conversation's attachments (retention); their ids."""
    ids = [
        int(r[0])
        for r in await conn.execute_fetchall(
            "SELECT id FROM attachments WHERE conv_id = ?", (conv_id,)
        )
    ]
    await conn.execute(
        "UPDATE data_keys SET wrapped = NULL, kek_id = NULL, destroyed_at = ?"
        " WHERE scope = ? AND destroyed_at IS NULL"
        " AND scope_id IN (SELECT id FROM attachments WHERE conv_id = ?)",
        (now, ATTACHMENT_SCOPE, conv_id),
    )
    return ids


# ---------------------------------------------------------------------------- the contract


class SqliteAttachments:
    """:class:`~chatd.store.contract.AttachmentRows` on SQLite.

    Recording, discarding and auditing touch no conversation state: every job keeps the
    writer's conversation cache."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx

    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo:
        ctx = self._ctx
        return await ctx.write(
            "record_attachment",
            lambda conn: insert_attachment_txn(conn, ctx.row_macs, new, ctx.clock_ms()),
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
        return await self._ctx.write(
            "discard_attachments",
            lambda conn: discard_txn(conn, attachment_ids, now_ms),
            keeps_conversation_cache=True,  # only unsent uploads: no conversation changes
        )

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
        live: set[int] = set()
        async with self._ctx.read("read_live_attachments") as conn:
            for chunk in chunks(sorted(set(attachment_ids))):
                rows = await conn.execute_fetchall(
                    f"SELECT a.id FROM attachments a {LIVE_KEY_JOIN}"
                    f" WHERE a.id IN ({','.join('?' * len(chunk))})",
                    list(chunk),
                )
                live.update(int(r[0]) for r in rows)
        return live
