"""The attachment rows' part of ``chatd verify`` on PostgreSQL: each row's reference, data
key, sealed name and thumbnail, and the times it shares with its data key.

The verdict on one row is shared with SQLite (:func:`chatd.store.sqlite.attachment_audit.
audit_row`, whose module says what each rule guards); only the page's read differs.
"""

from __future__ import annotations

from chatd.crypto.keyring import KeyRing
from chatd.store.attachment_verdicts import AUDIT_PAGE, RowVerdict, audit_row
from chatd.store.postgres.db import Connection


async def audit_page_txn(
    conn: Connection, ring: KeyRing, after: int, limit: int
) -> list[RowVerdict]:
    """Audit the attachment rows with an id above ``after``, by id, at most ``limit``."""
    rows = await conn.fetch(
        "SELECT a.id, a.size, a.name, a.thumbnail, a.conv_id, a.seq, k.kek_id,"
        " k.wrapped, k.scope_id IS NOT NULL, c.shredded_at, e.kind, e.sender,"
        " a.uploader, a.created_at, k.created_at, k.destroyed_at FROM attachments a"
        " LEFT JOIN data_keys k ON k.scope = 'attachment' AND k.scope_id = a.id"
        " AND k.version = 1"
        " LEFT JOIN conversations c ON c.id = a.conv_id"
        " LEFT JOIN events e ON e.conv_id = a.conv_id AND e.seq = a.seq"
        " WHERE a.id > $1 ORDER BY a.id LIMIT $2",
        after,
        limit,
    )
    return [audit_row(ring, tuple(row)) for row in rows]


__all__ = ["AUDIT_PAGE", "RowVerdict", "audit_page_txn"]
