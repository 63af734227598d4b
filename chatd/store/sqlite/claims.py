"""The SQL of attachment claims, and the attachment-row helpers the other modules share.

The claim rules are :mod:`chatd.core.claims`; here is what the writer reads for them while it
plans a batch (:func:`load_claimables_txn`) and how it sets the references in the batch's
transaction (:func:`write_claims_txn`), after the events whose triggers they look up.  The
row helpers (:data:`ATTACHMENT_COLUMNS`, :data:`LIVE_KEY_JOIN`, :func:`attachment_info`,
:func:`open_attachment_row`) are public: :mod:`.attachments` reads rows the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from chatd.core.claims import Claimable
from chatd.core.conversations import Operation, referenced_attachments
from chatd.core.errors import IntegrityError
from chatd.core.records import AttachmentInfo
from chatd.crypto.attachment_keys import open_file_name, unwrap_attachment_key
from chatd.crypto.envelope import WrappedKey
from chatd.crypto.keyring import KeyRing
from chatd.crypto.row_macs import ATTACHMENTS, RowMacs
from chatd.store.sqlite.row_macs import update_rows_txn

log = logging.getLogger("chatd.store.attachments")

MAX_VARIABLES = 900  # below SQLite's default limit of 999 bound parameters per statement
ATTACHMENT_COLUMNS = (
    "a.id, a.uploader, a.kind, a.mime, a.size, a.name, a.width, a.height,"
    " a.thumbnail IS NOT NULL, a.created_at, a.expires_at, a.conv_id, a.seq"
)
LIVE_KEY_JOIN = (
    "JOIN data_keys k ON k.scope = 'attachment' AND k.scope_id = a.id AND k.version = 1"
    " AND k.destroyed_at IS NULL"
)


def chunks(items: Sequence[int], size: int = MAX_VARIABLES) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def attachment_info(row: Sequence[Any], name: str) -> AttachmentInfo:
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


def open_attachment_row(
    ring: KeyRing, row: Sequence[Any], kek_id: str, wrapped: bytes
) -> tuple[bytes, str]:
    """The data key and the file name of an attachment row."""
    attachment_id = int(row[0])
    dek = unwrap_attachment_key(ring, WrappedKey(kek_id, bytes(wrapped)), attachment_id)
    return dek, open_file_name(dek, attachment_id, bytes(row[5]))


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
    for chunk in chunks(wanted):
        rows = await conn.execute_fetchall(
            f"SELECT {ATTACHMENT_COLUMNS}, k.kek_id, k.wrapped FROM attachments a {LIVE_KEY_JOIN}"
            f" WHERE a.id IN ({','.join('?' * len(chunk))})",
            list(chunk),
        )
        for row in rows:
            try:
                _dek, name = open_attachment_row(ring, row, row[13], row[14])
            except IntegrityError:
                log.error("attachment %s: its key or name does not open", row[0])
                continue  # refused like a missing one; `chatd verify` names it
            info = attachment_info(row, name)
            sent = info.conv_id is not None or info.id in in_flight
            found[info.id] = Claimable(
                info.id, info.uploader, info.expires_at, sent, info.message_ref()
            )
    return found


async def write_claims_txn(
    conn: aiosqlite.Connection, macs: RowMacs, claims: Mapping[int, tuple[int, int]]
) -> None:
    """Set the references (inside the batch's transaction, after its events), each with the
    row's new MAC (the reference is covered: chatd.crypto.row_macs)."""
    updated = 0
    for attachment_id, (conv, seq) in claims.items():
        done = await update_rows_txn(
            conn,
            macs,
            ATTACHMENTS,
            "id = ? AND conv_id IS NULL",
            (attachment_id,),
            {"conv_id": conv, "seq": seq},
        )
        updated += len(done)
    if updated != len(claims):
        # Discarded or claimed by another process after the batch was planned.
        raise RuntimeError("an attachment changed while its message was being stored")
