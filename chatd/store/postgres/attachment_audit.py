"""SCAFFOLD: the PostgreSQL attachment_audit part, to be written (mirrors chatd/store/sqlite/attachment_audit.py)."""

from __future__ import annotations

from typing import Any


def _audit_row(ring: KeyRing, row: Sequence[Any]) -> RowVerdict:
    raise NotImplementedError("postgres attachment_audit._audit_row")


async def audit_page_txn(
    conn: aiosqlite.Connection, ring: KeyRing, after: int, limit: int
) -> list[RowVerdict]:
    raise NotImplementedError("postgres attachment_audit.audit_page_txn")
