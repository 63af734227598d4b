"""What the concern modules of the SQLite store share: connections, data keys, clock, window.

One :class:`SqliteContext` per :class:`~chatd.store.sqlite.store.SqliteStore`.  The concern
modules (:mod:`.users`, :mod:`.tokens`, :mod:`.log`, :mod:`.inbox`, :mod:`.keys`,
:mod:`.attachments`, :mod:`.verify`) are handed this object, never each other's private
methods: reads go through :meth:`SqliteContext.read` (a named read transaction on a pooled
connection, one snapshot), writes through :meth:`SqliteContext.write` (an exclusive job of the
single writer) or :meth:`SqliteContext.apply` (a conversation operation, group-committed).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiosqlite

from chatd.core.conversations import Operation
from chatd.core.errors import StoreClosedError
from chatd.core.records import AppendResult
from chatd.crypto.keyring import KeyRing
from chatd.crypto.row_macs import RowMacs
from chatd.store.data_keys import DataKeys
from chatd.store.sqlite.damage import translating
from chatd.store.sqlite.db import connect, migrate, schema_version_txn, transaction
from chatd.store.sqlite.row_macs import backfill_txn
from chatd.store.sqlite.writer import GroupCommitWriter

T = TypeVar("T")
log = logging.getLogger("chatd.store")


class SqliteContext:
    def __init__(
        self,
        path: Path,
        ring: KeyRing,
        *,
        window_size: int,
        synchronous: str,
        max_batch: int,
        readers: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self.path = path
        self.keys = DataKeys(ring)
        self.window_size = window_size
        self.clock_ms = clock_ms
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._reader_count = readers
        self.schema_at_open = 0  # the schema version found before migrating
        self._writer_conn: aiosqlite.Connection | None = None
        self._plan_conn: aiosqlite.Connection | None = None
        self._writer: GroupCommitWriter | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._row_macs: RowMacs | None = None

    @property
    def row_macs(self) -> RowMacs:
        """Row MACs under the ring in use now (rotation replaces it; its derived keys are
        kept while it stays)."""
        ring = self.keys.ring
        if self._row_macs is None or self._row_macs.ring is not ring:
            self._row_macs = RowMacs(ring)
        return self._row_macs

    @property
    def writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise StoreClosedError()
        return self._writer

    async def open(self) -> None:
        """Connect, migrate, start the writer.  A failure closes what was opened before it
        propagates: aiosqlite's threads are not daemons, so a connection left open would keep
        the process alive after its error was said (a damaged database hung every command)."""
        try:
            async with translating():
                await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        self._writer_conn = await connect(self.path, synchronous=self._synchronous)
        macs = self.row_macs
        async with transaction(self._writer_conn, "read_schema_version"):
            self.schema_at_open = await schema_version_txn(self._writer_conn)
        await migrate(self._writer_conn, lambda conn, v: backfill_txn(conn, v, macs))
        for _ in range(self._reader_count):
            reader = await connect(self.path, synchronous=self._synchronous)
            self._all_readers.append(reader)
            self._readers.put_nowait(reader)
        # The writer's own read connection: planning reads must not queue behind the
        # in-flight batch on the write connection, nor wait for a pooled reader.
        self._plan_conn = await connect(self.path, synchronous=self._synchronous)
        self._writer = GroupCommitWriter(
            self._writer_conn,
            self._plan_conn,
            self.keys,
            max_batch=self._max_batch,
            clock_ms=self.clock_ms,
        )
        self._writer.start()

    async def close(self) -> None:
        """Stop the writer and close every connection, each even if another fails."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.stop()
        connections = [*self._all_readers, self._plan_conn, self._writer_conn]
        self._all_readers.clear()
        self._readers = asyncio.Queue()
        self._plan_conn = self._writer_conn = None
        for conn in connections:
            if conn is not None:
                await _close(conn)

    @asynccontextmanager
    async def read(self, name: str) -> AsyncIterator[aiosqlite.Connection]:
        """A pooled connection inside the read transaction ``name`` (one snapshot)."""
        if not self._all_readers:
            raise StoreClosedError()
        conn = await self._readers.get()
        try:
            async with translating(), transaction(conn, name, write=False):
                yield conn
        finally:
            self._readers.put_nowait(conn)

    async def write(
        self,
        name: str,
        run: Callable[[aiosqlite.Connection], Awaitable[T]],
        *,
        keeps_conversation_cache: bool = False,
    ) -> T:
        """Run ``run(conn)`` in the write transaction ``name``, in the writer's queue order
        (see :meth:`GroupCommitWriter.run_exclusive` for ``keeps_conversation_cache``)."""
        async with translating():
            return await self.writer.run_exclusive(
                name, run, keeps_conversation_cache=keeps_conversation_cache
            )

    async def apply(self, op: Operation) -> AppendResult:
        async with translating():
            return await self.writer.apply(op)


async def _close(conn: aiosqlite.Connection) -> None:
    """Close ``conn`` and end its thread, whatever state a failure left it in."""
    try:
        await conn.close()
    except (sqlite3.Error, ValueError) as exc:  # its thread still ends: close() stops it
        log.warning("closing a database connection failed: %s", exc)
