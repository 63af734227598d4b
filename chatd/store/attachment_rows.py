"""Attachment rows as every backend reads them: the columns, the join on a live key, and how a
row becomes an :class:`~chatd.core.records.AttachmentInfo` (the SQL around them is in each
backend's ``claims`` and ``attachments`` modules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatd.core.records import AttachmentInfo
from chatd.crypto.attachment_keys import open_file_name, unwrap_attachment_key
from chatd.crypto.envelope import WrappedKey
from chatd.crypto.keyring import KeyRing

ATTACHMENT_COLUMNS = (
    "a.id, a.uploader, a.kind, a.mime, a.size, a.name, a.width, a.height,"
    " a.thumbnail IS NOT NULL, a.created_at, a.expires_at, a.conv_id, a.seq"
)
LIVE_KEY_JOIN = (
    "JOIN data_keys k ON k.scope = 'attachment' AND k.scope_id = a.id AND k.version = 1"
    " AND k.destroyed_at IS NULL"
)


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
