"""PostgreSQL plumbing: connections and pools that keep the durability promise, named
transactions, the schema version.

**Ack after COMMIT is a promise.**  chatd tells a client "stored" once COMMIT returns, so
COMMIT must not return before the WAL is on disk.  Every connection (a single one, or each
one a pool opens) is checked before use: ``fsync`` must be on (off, a crash may corrupt the
whole cluster) and ``synchronous_commit`` must flush locally before COMMIT returns — ``on``,
or the values that wait for as much and more (``remote_apply``, ``remote_write``,
``local``).  ``off`` (set on the server, the database, the role, or the connection) is
refused with a sentence (:class:`DatabaseUnavailable`), whatever else works.

**Named transactions**, as on SQLite (:func:`chatd.store.sqlite.db.transaction`): a slow one
is logged with its name, and asyncpg's errors about the database come out as ours
(:mod:`.failures`).  Helpers that run inside one end in ``_txn``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chatd.core.errors import DatabaseUnavailable
from chatd.i18n import N_
from chatd.store.postgres.failures import translating

log = logging.getLogger("chatd.store")

Record: TypeAlias = asyncpg.Record
Connection: TypeAlias = "asyncpg.Connection[Record] | PoolConnectionProxy[Record]"
Pool: TypeAlias = "asyncpg.Pool[Record]"
Isolation = Literal["read_committed", "repeatable_read", "serializable"]

CONNECT_TIMEOUT_S = 10.0
SLOW_TRANSACTION_MS = 200.0
# synchronous_commit values under which COMMIT returns after the local WAL flush.
DURABLE_COMMIT = frozenset({"on", "remote_apply", "remote_write", "local"})
NOT_DURABLE = N_(
    "database unavailable: PostgreSQL has {setting} = {value}, so a message acknowledged"
    " as stored could be lost in a crash; chatd needs it on"
)


async def check_durability(conn: Connection) -> None:
    """Refuse a connection whose COMMIT would return before the data is on disk."""
    row = await conn.fetchrow(
        "SELECT current_setting('fsync') AS fsync,"
        " current_setting('synchronous_commit') AS synchronous_commit"
    )
    assert row is not None
    if row["fsync"] != "on":
        raise DatabaseUnavailable(NOT_DURABLE, setting="fsync", value=row["fsync"])
    if row["synchronous_commit"] not in DURABLE_COMMIT:
        raise DatabaseUnavailable(
            NOT_DURABLE, setting="synchronous_commit", value=row["synchronous_commit"]
        )


async def _checked(conn: asyncpg.Connection[Record]) -> None:
    await check_durability(conn)


async def connect(
    dsn: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> asyncpg.Connection[Record]:
    """One checked connection (migrations, the admin command)."""
    async with translating(dsn):
        conn = await asyncpg.connect(dsn, timeout=connect_timeout_s)
    try:
        async with translating(dsn):
            await check_durability(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> Pool:
    """A pool whose every connection passed :func:`check_durability` when it was opened
    (a pool reopens connections after a server restart: each new one is checked)."""
    async with translating(dsn):
        return await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, timeout=connect_timeout_s, init=_checked
        )


@asynccontextmanager
async def transaction(
    conn: Connection,
    name: str,
    *,
    readonly: bool = False,
    isolation: Isolation = "read_committed",
) -> AsyncIterator[Connection]:
    """A named transaction on ``conn``: committed when the block ends, rolled back when it
    raises.  A COMMIT that returns has been flushed (:func:`check_durability`)."""
    started = time.perf_counter()
    try:
        async with translating(), conn.transaction(isolation=isolation, readonly=readonly):
            yield conn
    except BaseException:
        log.debug("txn %s rolled back", name)
        raise
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > SLOW_TRANSACTION_MS:
            log.warning("txn %s took %.0f ms", name, elapsed_ms)


async def schema_version_txn(conn: Connection) -> int:
    """The highest migration recorded (0 for a database chatd never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))


async def has_chatd_tables_txn(conn: Connection) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT to_regclass('users') IS NOT NULL OR to_regclass('events') IS NOT NULL"
        )
    )
