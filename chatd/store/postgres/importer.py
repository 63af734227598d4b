"""Moving a SQLite database into an empty PostgreSQL one, as it is (``chatd migrate-to``).

Nothing is opened, re-sealed or re-chained: every row goes across with its bytes (sealed
payloads, hashes, row MACs, wrapped keys), so the seqs, the hash chains and the MACs are the
same, and so is the **epoch**: it is the same history, moved, which the checkpoint log goes
on vouching for (the command copies the log too).  ``chatd verify`` passes after the move.

SQLite is read in one read transaction (one snapshot; the server must be stopped, which the
command checks with the server lock).  PostgreSQL is written in **one transaction**: all or
nothing.  The rows go in the order the append-only triggers accept them: parents before
children, events before the shredding that forbids more of them, attachments after the
messages that reference them, the admin audit log in seq order (each record must link to
the last).  Booleans are SQLite integers and become PostgreSQL booleans (the row MAC
encodes both as the same integer).  The sequences are moved past the ids imported.
Live sessions are not moved: they belong to the processes that stopped.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from chatd.core.errors import BackupError
from chatd.i18n import N_
from chatd.store.postgres.db import Connection, transaction

# In the order the rows can go in; the columns are PostgreSQL's (the same names as SQLite's).
TABLES = (
    "users",
    "conversations",
    "data_keys",
    "events",
    "memberships",
    "idempotency_keys",
    "auth_tokens",
    "read_markers",
    "attachments",
    "login_attempts",
    "upload_budgets",
    "admin_audit",
)
ORDER = {"events": "conv_id, seq", "admin_audit": "seq", "memberships": "conv_id, joined_seq"}
SEQUENCES = {
    "user_ids": "users",
    "conversation_ids": "conversations",
    "login_attempt_ids": "login_attempts",
}
NOT_EMPTY = N_("the PostgreSQL database {address} already holds chatd data: move into an empty one")

Rows = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


async def _columns_txn(conn: Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return {str(r[0]): str(r[1]) for r in rows if r[0] != "head_version"}


def _read_sqlite(path: Path, columns: dict[str, list[str]]) -> tuple[Rows, str]:
    """Every table's rows (the given columns), and the epoch, in one snapshot."""
    uri = f"file:{path}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        rows: Rows = {}
        for table in TABLES:
            names = columns[table]
            order = f" ORDER BY {ORDER[table]}" if table in ORDER else ""
            cursor = conn.execute(f"SELECT {', '.join(names)} FROM {table}{order}")
            rows[table] = (names, [tuple(r) for r in cursor])
        epoch = str(conn.execute("SELECT epoch FROM store_epoch").fetchone()[0])
        conn.execute("COMMIT")
    return rows, epoch


def _typed(values: Sequence[Any], kinds: Sequence[str]) -> tuple[Any, ...]:
    return tuple(
        bool(v) if kind == "boolean" and v is not None else v
        for v, kind in zip(values, kinds, strict=True)
    )


async def import_sqlite_txn(conn: Connection, sqlite_path: Path, address: str) -> dict[str, int]:
    """Copy every row of the SQLite database into this (migrated, empty) PostgreSQL one,
    inside the caller's transaction; the rows per table."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
        raise BackupError(NOT_EMPTY, address=address)
    types = {table: await _columns_txn(conn, table) for table in TABLES}
    columns = {table: list(kinds) for table, kinds in types.items()}
    rows, epoch = await asyncio.to_thread(_read_sqlite, sqlite_path, columns)
    counts: dict[str, int] = {}
    shredded: list[tuple[int, int]] = []
    for table in TABLES:
        names, records = rows[table]
        kinds = [types[table][n] for n in names]
        records = [_typed(r, kinds) for r in records]
        if table == "conversations":  # shredded last: the trigger refuses events after it
            at = names.index("shredded_at")
            shredded = [(r[at], r[names.index("id")]) for r in records if r[at] is not None]
            records = [(*r[:at], None, *r[at + 1 :]) for r in records]
        if records:
            await conn.copy_records_to_table(table, records=records, columns=names)
        counts[table] = len(records)
    if shredded:
        await conn.executemany("UPDATE conversations SET shredded_at = $1 WHERE id = $2", shredded)
    await conn.execute("UPDATE store_epoch SET epoch = $1 WHERE id = 1", epoch)
    for sequence, table in SEQUENCES.items():
        await conn.execute(
            f"SELECT setval('{sequence}', GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"
        )
    return counts


async def import_sqlite(conn: Connection, sqlite_path: Path, address: str) -> dict[str, int]:
    """:func:`import_sqlite_txn` in its own transaction, all or nothing (the database was
    migrated by the caller)."""
    async with transaction(conn, "import_sqlite"):
        return await import_sqlite_txn(conn, sqlite_path, address)
