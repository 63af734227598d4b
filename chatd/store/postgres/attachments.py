"""SCAFFOLD: the PostgreSQL attachments part, to be written (mirrors chatd/store/sqlite/attachments.py)."""

from __future__ import annotations

from typing import Any


async def insert_attachment_txn(
    conn: aiosqlite.Connection, macs: RowMacs, new: NewAttachment, now: int
) -> AttachmentInfo:
    raise NotImplementedError("postgres attachments.insert_attachment_txn")


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
    raise NotImplementedError("postgres attachments.find_for_user_txn")


async def expired_txn(conn: aiosqlite.Connection, now: int, limit: int) -> list[int]:
    raise NotImplementedError("postgres attachments.expired_txn")


async def discard_txn(conn: aiosqlite.Connection, ids: Sequence[int], now: int) -> list[int]:
    raise NotImplementedError("postgres attachments.discard_txn")


async def shred_attachments_txn(conn: aiosqlite.Connection, conv_id: int, now: int) -> list[int]:
    raise NotImplementedError("postgres attachments.shred_attachments_txn")


class PostgresAttachments:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo:
        raise NotImplementedError("postgres attachments.record_attachment")

    async def attachment_for_user(
        self, user_id: int, attachment_id: int, *, thumbnail: bool = False
    ) -> AttachmentAccess:
        raise NotImplementedError("postgres attachments.attachment_for_user")

    async def expired_attachments(self, now_ms: int, limit: int = 1000) -> list[int]:
        raise NotImplementedError("postgres attachments.expired_attachments")

    async def discard_attachments(self, attachment_ids: Sequence[int], now_ms: int) -> list[int]:
        raise NotImplementedError("postgres attachments.discard_attachments")

    async def attachment_keys(self, after: int = 0, limit: int = 200) -> list[AttachmentKey]:
        raise NotImplementedError("postgres attachments.attachment_keys")

    async def live_attachments(self, attachment_ids: Sequence[int]) -> set[int]:
        raise NotImplementedError("postgres attachments.live_attachments")
