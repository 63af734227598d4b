"""Attachments in the SQLite store (migration 3): record, claim, serve, discard, verify.

The rows say who uploaded what and which message carries it; the encrypted files are in the
:class:`~chatd.attachments.blobstore.BlobStore` (the gateway writes a file *before* asking the
store to record it, so no row ever points to a missing file).  Each attachment's data key is a
``data_keys`` row of scope ``'attachment'`` — so KEK rotation, ``kek_ids_in_use`` and crypto-
shredding treat it like any other data key.

**Claiming.**  A message refers to attachments by id.  The writer (:mod:`.sqlite_batch`) loads
them with the batch's planning reads (:func:`load_claimables_txn`), checks each one while it
decides the operation (:func:`attach_to_drafts`: it exists, the sender uploaded it, no message
carries it yet — neither committed nor in the batch in flight nor earlier in this batch — and it
has not expired) and replaces the ids in the message's payload by what a reader needs to show
them (:meth:`AttachmentInfo.message_ref`: name, type, size, pixel size, thumbnail flag), which is
then sealed with the message: reads need no join.  :func:`write_claims_txn` sets the references
in the same transaction as the append; the triggers of migration 3 refuse a reference by anything
but a message of the uploader appended before expiry, and a second reference.  If another
process (``chatd`` admin commands) discarded or claimed one meanwhile, the batch fails and its
callers retry, which then gives the precise error.

**Reading** (:func:`find_for_user_txn`) applies visibility in the query: a sent attachment is
served to a user who may see its message (the membership-interval predicate of
:data:`chatd.store.sqlite.VISIBLE`) and only inside their visible window (older: archived); an
unsent one only to its uploader.  A shredded conversation's attachments have no key any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from chatd.attachments.blobstore import BlobStore
from chatd.core.claims import Claimable
from chatd.core.conversations import Operation, referenced_attachments
from chatd.core.errors import (
    AttachmentArchived,
    AttachmentFileMissing,
    AttachmentNotFound,
    ChatdError,
    ConflictError,
    IntegrityError,
    ThumbnailNotFound,
    UserNotFound,
    ValidationError,
)
from chatd.core.events import EventKind
from chatd.core.records import AttachmentAccess, AttachmentInfo, NewAttachment, VerifyProblem
from chatd.crypto.attachment_keys import (
    ATTACHMENT_KEY_VERSION,
    ATTACHMENT_SCOPE,
    attachment_scope,
    open_file_name,
    open_thumbnail,
    seal_file_name,
    seal_thumbnail,
    unwrap_attachment_key,
)
from chatd.crypto.envelope import WrappedKey, wrap_data_key
from chatd.crypto.keyring import KeyRing
from chatd.i18n import N_, Text

log = logging.getLogger("chatd.store.attachments")

_COLUMNS = (
    "a.id, a.uploader, a.kind, a.mime, a.size, a.name, a.width, a.height,"
    " a.thumbnail IS NOT NULL, a.created_at, a.expires_at, a.conv_id, a.seq"
)
_KEY_JOIN = (
    "JOIN data_keys k ON k.scope = 'attachment' AND k.scope_id = a.id AND k.version = 1"
    " AND k.destroyed_at IS NULL"
)
_MAX_VARIABLES = 900
VERIFY_PAGE = 200
MISSING_FILE = Text(N_("its file is missing"))
ORPHAN_GRACE_SECONDS = 3600  # a file without a row younger than this may be an upload in progress


def _chunks(items: Sequence[int], size: int = _MAX_VARIABLES) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _info(row: Sequence[Any], name: str) -> AttachmentInfo:
    aid, uploader, kind, mime, size, _name, width, height, thumb, created, expires = row[:11]
    conv, seq = row[11], row[12]
    return AttachmentInfo(
        id=int(aid),
        uploader=int(uploader),
        kind=str(kind),
        mime=str(mime),
        size=int(size),
        name=name,
        width=None if width is None else int(width),
        height=None if height is None else int(height),
        has_thumbnail=bool(thumb),
        created_at=int(created),
        expires_at=int(expires),
        conv_id=None if conv is None else int(conv),
        seq=None if seq is None else int(seq),
    )


def _open_row(ring: KeyRing, row: Sequence[Any], kek_id: str, wrapped: bytes) -> tuple[bytes, str]:
    """The data key and the file name of an attachment row."""
    attachment_id = int(row[0])
    dek = unwrap_attachment_key(ring, WrappedKey(kek_id, bytes(wrapped)), attachment_id)
    return dek, open_file_name(dek, attachment_id, bytes(row[5]))


# ---------------------------------------------------------------------------- recording


async def insert_attachment_txn(
    conn: aiosqlite.Connection, ring: KeyRing, new: NewAttachment, now: int
) -> AttachmentInfo:
    if not new.name or new.size < 0 or new.ttl_ms <= 0 or not new.kind or not new.mime:
        raise ValidationError(N_("The attachment record is incomplete."))
    if not 0 < new.id < 2**63:
        raise ValidationError(N_("The attachment number is not valid."))
    if not list(await conn.execute_fetchall("SELECT 1 FROM users WHERE id = ?", (new.uploader,))):
        raise UserNotFound(user=new.uploader)
    wrapped = wrap_data_key(ring, new.dek, attachment_scope(new.id))
    sealed_name = seal_file_name(new.dek, new.id, new.name)
    thumbnail = None if new.thumbnail is None else seal_thumbnail(new.dek, new.id, new.thumbnail)
    expires_at = now + new.ttl_ms
    try:
        await conn.execute(
            "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ATTACHMENT_SCOPE, new.id, ATTACHMENT_KEY_VERSION, wrapped.kek_id, wrapped.blob, now),
        )
        await conn.execute(
            "INSERT INTO attachments (id, uploader, created_at, expires_at, size, kind, mime,"
            " name, width, height, thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


# ---------------------------------------------------------------------------- claiming


async def load_claimables_txn(
    conn: aiosqlite.Connection,
    ring: KeyRing,
    ops: Iterable[Operation],
    in_flight: Mapping[int, tuple[int, int]],
) -> dict[int, Claimable]:
    """The attachments ``ops`` refer to (those with a live key; absent ones are left out).

    ``in_flight`` are the claims of the batch being committed: they count as sent.
    """
    wanted = sorted({a for op in ops for a in referenced_attachments(op)})
    found: dict[int, Claimable] = {}
    for chunk in _chunks(wanted):
        rows = await conn.execute_fetchall(
            f"SELECT {_COLUMNS}, k.kek_id, k.wrapped FROM attachments a {_KEY_JOIN}"
            f" WHERE a.id IN ({','.join('?' * len(chunk))})",
            list(chunk),
        )
        for row in rows:
            try:
                _dek, name = _open_row(ring, row, row[13], row[14])
            except IntegrityError:
                log.error("attachment %s: its key or name does not open", row[0])
                continue  # refused like a missing one; `chatd verify` names it
            info = _info(row, name)
            sent = info.conv_id is not None or info.id in in_flight
            found[info.id] = Claimable(
                info.id, info.uploader, info.expires_at, sent, info.message_ref()
            )
    return found


async def write_claims_txn(
    conn: aiosqlite.Connection, claims: Mapping[int, tuple[int, int]]
) -> None:
    """Set the references (inside the batch's transaction, after its events)."""
    if not claims:
        return
    cursor = await conn.executemany(
        "UPDATE attachments SET conv_id = ?, seq = ? WHERE id = ? AND conv_id IS NULL",
        [(conv, seq, attachment_id) for attachment_id, (conv, seq) in claims.items()],
    )
    if cursor.rowcount != len(claims):
        # Discarded or claimed by another process after the batch was planned.
        raise RuntimeError("an attachment changed while its message was being stored")


# ---------------------------------------------------------------------------- reading

WindowStart = Callable[[aiosqlite.Connection, int, int], Awaitable[tuple[int, bool]]]


async def find_for_user_txn(
    conn: aiosqlite.Connection,
    ring: KeyRing,
    user_id: int,
    attachment_id: int,
    now: int,
    *,
    visible: str,
    window_start: WindowStart,
    thumbnail: bool,
) -> AttachmentAccess:
    thumb_column = "a.thumbnail" if thumbnail else "NULL"
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {_COLUMNS}, k.kek_id, k.wrapped, {thumb_column}"
            f" FROM attachments a {_KEY_JOIN}"
            " LEFT JOIN events e ON e.conv_id = a.conv_id AND e.seq = a.seq"
            " WHERE a.id = :id AND ("
            "  (a.conv_id IS NULL AND a.uploader = :user AND a.expires_at > :now)"
            f"  OR (a.conv_id IS NOT NULL AND {visible} AND NOT EXISTS (SELECT 1 FROM"
            "   conversations c WHERE c.id = a.conv_id AND c.shredded_at IS NOT NULL)))",
            {"id": attachment_id, "user": user_id, "now": now},
        )
    )
    if not rows:
        raise AttachmentNotFound()
    row = rows[0]
    info_conv, info_seq = row[11], row[12]
    if info_conv is not None:
        start, _ = await window_start(conn, user_id, int(info_conv))
        if int(info_seq) < start:
            raise AttachmentArchived()
    dek, name = _open_row(ring, row, row[13], row[14])
    info = _info(row, name)
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
    for chunk in _chunks(sorted(set(ids))):
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


async def shred_txn(conn: aiosqlite.Connection, conv_id: int, now: int) -> list[int]:
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


def delete_files(blobs: BlobStore, ids: Iterable[int]) -> int:
    """Remove the files of discarded or shredded attachments (after the commit)."""
    removed = 0
    for attachment_id in ids:
        try:
            removed += blobs.delete(attachment_id)
        except OSError as exc:  # the next verify reports and sweeps it
            log.warning("could not remove the file of attachment %x: %s", attachment_id, exc)
    return removed


# ---------------------------------------------------------------------------- verifying


@dataclass(slots=True)
class AttachmentAudit:
    checked: int
    problems: list[VerifyProblem]
    warnings: list[str]
    known_ids: set[int]
    dead_files: list[int]  # files of attachments whose key was destroyed
    missing: set[int] = field(default_factory=set)  # attachments whose file is missing


def _check_file(blobs: BlobStore, attachment_id: int, dek: bytes, size: int) -> Text | None:
    if not blobs.exists(attachment_id):
        return MISSING_FILE
    verdict = blobs.verify(attachment_id, dek)
    if verdict.problem is not None:
        detail = verdict.problem
        if "attachment" in detail.params:
            # The crypto layer names attachments in decimal; admins see the hex id everywhere.
            detail = Text(detail.msgid, {**detail.params, "attachment": f"{attachment_id:016x}"})
        if verdict.bad_chunk is None:
            return Text(N_("the file does not open: {reason}"), {"reason": detail})
        return Text(
            N_("first bad chunk {chunk}: {reason}"),
            {"chunk": str(verdict.bad_chunk), "reason": detail},
        )
    with blobs.open(attachment_id, dek) as opener:
        actual = opener.size
    if actual != size:
        return Text(
            N_("the file holds {actual} bytes, the row says {size}"),
            {"actual": str(actual), "size": str(size)},
        )
    return None


async def verify_attachments_txn(
    conn: aiosqlite.Connection, ring: KeyRing, blobs: BlobStore
) -> AttachmentAudit:
    """Open every live attachment: key, name, thumbnail, then the file chunk by chunk."""
    audit = AttachmentAudit(0, [], [], set(), [])
    last = 0
    while True:
        rows = list(
            await conn.execute_fetchall(
                "SELECT a.id, a.size, a.name, a.thumbnail, a.conv_id, a.seq, k.kek_id,"
                " k.wrapped, k.scope_id IS NOT NULL, c.shredded_at, e.kind, e.sender,"
                " a.uploader FROM attachments a"
                " LEFT JOIN data_keys k ON k.scope = 'attachment' AND k.scope_id = a.id"
                " AND k.version = 1"
                " LEFT JOIN conversations c ON c.id = a.conv_id"
                " LEFT JOIN events e ON e.conv_id = a.conv_id AND e.seq = a.seq"
                " WHERE a.id > ? ORDER BY a.id LIMIT ?",
                (last, VERIFY_PAGE),
            )
        )
        for row in rows:
            audit.known_ids.add(int(row[0]))
            problem = await _verify_one(blobs, ring, row, audit)
            if problem is not None:
                attachment_id, conv, seq = int(row[0]), row[4], row[5]
                if problem == MISSING_FILE:
                    audit.missing.add(attachment_id)
                # The reason names the attachment itself, so that every output of verify
                # (text, JSON) carries it.
                reason = Text(
                    N_("attachment {attachment}: {problem}"),
                    {"attachment": f"{attachment_id:016x}", "problem": problem},
                )
                audit.problems.append(
                    VerifyProblem(conv or 0, seq or 0, reason, attachment_id=attachment_id)
                )
        if len(rows) < VERIFY_PAGE:
            return audit
        last = int(rows[-1][0])


async def _verify_one(
    blobs: BlobStore, ring: KeyRing, row: Sequence[Any], audit: AttachmentAudit
) -> Text | None:
    (aid, size, name, thumb, conv, _seq, kek_id, wrapped, has_key, shredded, kind, sender) = row[
        :12
    ]
    uploader = row[12]
    attachment_id = int(aid)
    if conv is not None and (kind != EventKind.MESSAGE or sender != uploader):
        return Text(N_("its reference is not a message of its uploader"))
    if not has_key:
        return Text(N_("it has no data key"))
    if wrapped is None:
        if conv is not None and shredded is not None:
            audit.dead_files.append(attachment_id)  # shredded with its conversation: fine
            return None
        return Text(N_("its data key was destroyed but the attachment is in use"))
    try:
        dek = unwrap_attachment_key(ring, WrappedKey(str(kek_id), bytes(wrapped)), attachment_id)
    except IntegrityError as exc:
        return Text(N_("data key: {reason}"), {"reason": exc.text})
    try:
        open_file_name(dek, attachment_id, bytes(name))
    except IntegrityError:
        return Text(N_("the sealed file name does not open"))
    if thumb is not None:
        try:
            open_thumbnail(dek, attachment_id, bytes(thumb))
        except IntegrityError:
            return Text(N_("the sealed thumbnail does not open"))
    audit.checked += 1
    try:
        return await asyncio.to_thread(_check_file, blobs, attachment_id, dek, int(size))
    except AttachmentFileMissing:
        return MISSING_FILE
    except (ChatdError, OSError) as exc:
        why = exc.text if isinstance(exc, ChatdError) else str(exc)
        return Text(N_("the file cannot be read: {reason}"), {"reason": why})


async def still_live_txn(conn: aiosqlite.Connection, audit: AttachmentAudit) -> None:
    """Drop the missing-file problems of attachments since discarded or shredded."""
    ids = sorted(audit.missing)
    live: set[int] = set()
    for chunk in _chunks(ids):
        rows = await conn.execute_fetchall(
            f"SELECT a.id FROM attachments a {_KEY_JOIN}"
            f" WHERE a.id IN ({','.join('?' * len(chunk))})",
            list(chunk),
        )
        live.update(int(r[0]) for r in rows)
    audit.problems = [
        p for p in audit.problems if p.attachment_id not in audit.missing or p.attachment_id in live
    ]


def sweep_orphans(
    blobs: BlobStore, known: set[int], dead: Iterable[int], *, now: float | None = None
) -> list[Text]:
    """Remove files that no row names (older than the grace period) and files of shredded
    attachments; one warning each."""
    warnings: list[Text] = []
    cutoff = (time.time() if now is None else now) - ORPHAN_GRACE_SECONDS
    for attachment_id in blobs.ids():
        if attachment_id in known:
            continue
        path = blobs.path(attachment_id)
        try:
            recent = os.stat(path).st_mtime > cutoff
        except FileNotFoundError:
            continue
        if recent:
            warnings.append(
                Text(
                    N_(
                        "attachment file {attachment} has no row yet (an upload in progress?); kept"
                    ),
                    {"attachment": f"{attachment_id:016x}"},
                )
            )
            continue
        with contextlib.suppress(FileNotFoundError):
            blobs.delete(attachment_id)
        warnings.append(
            Text(
                N_("attachment file {attachment} had no row; removed"),
                {"attachment": f"{attachment_id:016x}"},
            )
        )
    for attachment_id in dead:
        if blobs.delete(attachment_id):
            warnings.append(
                Text(
                    N_("attachment file {attachment} of a shredded conversation; removed"),
                    {"attachment": f"{attachment_id:016x}"},
                )
            )
    return warnings
