"""The attachment rows' reads of ``chatd verify`` on SQLite; the rule each row is judged by
is backend-neutral (:mod:`chatd.store.attachment_verdicts`)."""

from __future__ import annotations

import aiosqlite

from chatd.crypto.keyring import KeyRing
from chatd.store.attachment_verdicts import AUDIT_PAGE, RowVerdict, audit_row

__all__ = ["AUDIT_PAGE", "RowVerdict", "audit_page_txn", "audit_row"]


async def audit_page_txn(
    conn: aiosqlite.Connection, ring: KeyRing, after: int, limit: int
) -> list[RowVerdict]:
    """Audit the attachment rows with an id above ``after``, by id, at most ``limit``."""
    rows = await conn.execute_fetchall(
        "SELECT a.id, a.size, a.name, a.thumbnail, a.conv_id, a.seq, k.kek_id,"
        " k.wrapped, k.scope_id IS NOT NULL, c.shredded_at, e.kind, e.sender,"
        " a.uploader, a.created_at, k.created_at, k.destroyed_at FROM attachments a"
        " LEFT JOIN data_keys k ON k.scope = 'attachment' AND k.scope_id = a.id"
        " AND k.version = 1"
        " LEFT JOIN conversations c ON c.id = a.conv_id"
        " LEFT JOIN events e ON e.conv_id = a.conv_id AND e.seq = a.seq"
        " WHERE a.id > ? ORDER BY a.id LIMIT ?",
        (after, limit),
    )
    return [audit_row(ring, row) for row in rows]
