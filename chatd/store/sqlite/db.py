"""SQLite plumbing: connections, pragmas, named transactions, migrations, the epoch.

Every transaction has a name (``async with transaction(conn, "append_batch")``) so that a slow
or failed one can be told apart in logs; helpers that must run inside one end in ``_txn``.
Connections use ``isolation_level=None``: the code issues BEGIN/COMMIT itself and never
relies on the sqlite3 module's implicit transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from chatd.core.errors import DatabaseDamaged, MigrationError
from chatd.i18n import N_
from chatd.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS

log = logging.getLogger("chatd.store")


async def connect(path: Path, *, synchronous: str, readonly: bool = False) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not readonly and not path.exists():  # noqa: ASYNC240 - once, at start-up
        # Create the file 0600 ourselves: SQLite gives the -wal and -shm files the database's
        # permissions, and even sealed health data is nobody else's business.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if readonly:
        conn = await aiosqlite.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
    # Deliberately no fetch-time conversion: blobs come back as bytes, ints as ints.
    try:
        await conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            # The first statement to read the file: a damaged schema fails here.
            await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {synchronous}")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        # Its thread is not a daemon: a connection nobody closes keeps the process alive.
        await conn.close()
        raise
    return conn


@asynccontextmanager
async def transaction(
    conn: aiosqlite.Connection, name: str, *, write: bool = True
) -> AsyncIterator[aiosqlite.Connection]:
    """A named transaction.  Writes take the lock up front (BEGIN IMMEDIATE) so that a
    transaction never fails half-way with SQLITE_BUSY; reads get one consistent snapshot."""
    started = time.perf_counter()
    try:
        await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    except asyncio.CancelledError:
        # aiosqlite runs the statement in its thread even when the caller is cancelled (a
        # gateway connection whose client vanished): end whatever began, or the connection
        # would go back to its pool inside a transaction that nobody ends.
        with contextlib.suppress(sqlite3.Error):  # BEGIN had not run: nothing to end
            await conn.execute("ROLLBACK")
        raise
    try:
        yield conn
    except BaseException:
        try:
            await conn.execute("ROLLBACK")
        except sqlite3.Error:  # the connection may already have rolled back
            log.warning("txn %s: rollback failed", name)
        raise
    else:
        try:
            await conn.execute("COMMIT")
        except sqlite3.Error:
            if not write:
                # A read has nothing to commit, yet a damaged file can fail its COMMIT: end
                # it, or the pooled connection would go back inside a transaction.
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
            raise
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > 200:
            log.warning("txn %s took %.0f ms", name, elapsed_ms)


async def schema_version_txn(conn: aiosqlite.Connection) -> int:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    rows = list(await conn.execute_fetchall("SELECT MAX(version) FROM schema_migrations"))
    return int(rows[0][0] or 0)


async def _has_tables_txn(conn: aiosqlite.Connection) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'events')"
    )
    return bool(list(rows))


Backfill = Callable[[aiosqlite.Connection, int], Awaitable[None]]


async def migrate(conn: aiosqlite.Connection, backfill: Backfill | None = None) -> int:
    """Apply the pending migrations, each in its own transaction; return the version.

    ``backfill(conn, version)`` runs inside the transaction of each migration that has a step
    in Python (:attr:`Migration.backfill`: one that needs the key file, such as MACing the
    rows that exist); the store's open passes it.  Without it (the reference schema, an
    empty database) that step does nothing."""
    async with transaction(conn, "read_schema_version"):
        current = await schema_version_txn(conn)
        if current == 0 and await _has_tables_txn(conn):
            # Migration 1 records itself with the tables it makes: its record gone (a damaged
            # schema_migrations, or its row in sqlite_master) is damage, not a new database.
            raise DatabaseDamaged(
                N_("database damaged: {reason}"), reason="chatd tables without their migrations"
            )
    if current > LATEST_VERSION:
        raise MigrationError(
            N_(
                "The database is at schema version {current}, newer than this chatd"
                " ({latest}); upgrade chatd."
            ),
            current=current,
            latest=LATEST_VERSION,
        )
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        try:
            async with transaction(conn, f"migration_{migration.version}"):
                # executescript would COMMIT implicitly; run statements one by one instead.
                for statement in _statements(migration.sql):
                    await conn.execute(statement)
                if migration.backfill and backfill is not None:
                    await backfill(conn, migration.version)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at)"
                    " VALUES (?, ?, ?)",
                    (migration.version, migration.description, int(time.time())),
                )
        except sqlite3.Error as exc:
            raise MigrationError(
                N_("Migration {version} failed: {reason}"),
                version=migration.version,
                reason=str(exc),
            ) from exc
        log.info("applied migration %d: %s", migration.version, migration.description)
        current = migration.version
    return current


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        code = line.split("--", 1)[0]
        buffer += code
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


# ---------------------------------------------------------------------------- epoch


def new_epoch() -> str:
    """A fresh epoch: 16 random bytes as 32 hexadecimal digits (as migration 6 makes them)."""
    return secrets.token_hex(16)


async def read_epoch_txn(conn: aiosqlite.Connection) -> str:
    rows = list(await conn.execute_fetchall("SELECT epoch FROM store_epoch WHERE id = 1"))
    if not rows or not isinstance(rows[0][0], str):
        # Migration 6 made the row and a trigger keeps it: only a damaged file lacks it.
        raise DatabaseDamaged(N_("database damaged: {reason}"), reason="no store epoch")
    return rows[0][0]


async def write_epoch_txn(conn: aiosqlite.Connection, epoch: str, now_ms: int) -> None:
    await conn.execute(
        "UPDATE store_epoch SET epoch = ?, declared_at = ? WHERE id = 1", (epoch, now_ms)
    )
