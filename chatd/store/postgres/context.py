"""What the concern modules of the PostgreSQL store share: the pool, data keys, clock, window.

The counterpart of :mod:`chatd.store.sqlite.context`, with one difference that shapes every
part: **other nodes write to the same database at the same time.**  Nothing here may rely on
being the only writer, so

* reads go through :meth:`PostgresContext.read`: a pooled connection inside a named
  read-only ``REPEATABLE READ`` transaction (one snapshot, like a SQLite read);
* writes other than conversation operations go through :meth:`PostgresContext.write`: a
  named transaction on a pooled connection.  Each part says how it stays right under
  concurrent writers (a row lock, ``ON CONFLICT``, a conditional ``UPDATE``); a part that
  needs more asks for ``SERIALIZABLE``, and the write is retried, whole, on a serialization
  failure or a deadlock (SQLSTATE class 40), a bounded number of times;
* conversation operations go through :meth:`PostgresContext.apply`: this node's group-commit
  writer (:mod:`.writer`), which locks the heads it appends to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg

from chatd.core.conversations import Operation
from chatd.core.errors import DatabaseUnavailable, StoreClosedError
from chatd.core.records import AppendResult
from chatd.crypto.keyring import KeyRing
from chatd.crypto.row_macs import RowMacs
from chatd.i18n import N_
from chatd.store.data_keys import DataKeys
from chatd.store.postgres.db import (
    Connection,
    Isolation,
    Pool,
    create_pool,
    schema_version_txn,
    transaction,
)
from chatd.store.postgres.failures import translating
from chatd.store.postgres.migrations import LATEST_VERSION, migrate
from chatd.store.postgres.writer import GroupCommitWriter

T = TypeVar("T")
log = logging.getLogger("chatd.store")

RETRIES = 8  # serialization failures and deadlocks, before the error goes up
RETRY_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
NOT_MIGRATED = N_(
    "database unavailable: its schema is at version {found} and this chatd needs {needed};"
    " run chatd migrate first"
)


class PostgresContext:
    def __init__(
        self,
        dsn: str,
        ring: KeyRing,
        *,
        window_size: int,
        max_batch: int,
        clock_ms: Callable[[], int],
        pool_size: int,
        migrate: bool,
    ) -> None:
        self.dsn = dsn
        self.keys = DataKeys(ring)
        self.window_size = window_size
        self.clock_ms = clock_ms
        self._max_batch = max_batch
        self._pool_size = pool_size
        self._migrate = migrate
        self.schema_at_open = 0  # the schema version found before migrating
        self._pool: Pool | None = None
        self._writer: GroupCommitWriter | None = None
        self._row_macs: RowMacs | None = None

    @property
    def row_macs(self) -> RowMacs:
        """Row MACs under the ring in use now (rotation replaces it)."""
        ring = self.keys.ring
        if self._row_macs is None or self._row_macs.ring is not ring:
            self._row_macs = RowMacs(ring)
        return self._row_macs

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise StoreClosedError()
        return self._pool

    @property
    def writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise StoreClosedError()
        return self._writer

    async def open(self) -> None:
        """Connect, migrate (when allowed: else refuse an older schema), start the writer.
        A failure closes what was opened before it propagates."""
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        # Two connections at least: the writer's batch and a read never wait on each other.
        self._pool = await create_pool(self.dsn, min_size=2, max_size=max(2, self._pool_size))
        async with translating(self.dsn), self._pool.acquire() as conn:
            async with transaction(conn, "read_schema_version", readonly=True):
                self.schema_at_open = await schema_version_txn(conn)
            if self._migrate:
                await migrate(conn)
            elif self.schema_at_open < LATEST_VERSION:
                raise DatabaseUnavailable(
                    NOT_MIGRATED, found=self.schema_at_open, needed=LATEST_VERSION
                )
        self._writer = GroupCommitWriter(
            self._pool, self.keys, max_batch=self._max_batch, clock_ms=self.clock_ms
        )
        self._writer.start()

    async def close(self) -> None:
        """Stop the writer and close the pool, even if stopping the writer fails."""
        writer, self._writer = self._writer, None
        pool, self._pool = self._pool, None
        try:
            if writer is not None:
                await writer.stop()
        finally:
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=10)
                except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                    log.warning("closing the database pool failed: %s", type(exc).__name__)
                    pool.terminate()

    @asynccontextmanager
    async def read(self, name: str) -> AsyncIterator[Connection]:
        """A pooled connection inside the read-only transaction ``name`` (one snapshot)."""
        async with (
            translating(),
            self.pool.acquire() as conn,
            transaction(conn, name, readonly=True, isolation="repeatable_read"),
        ):
            yield conn

    async def write(
        self,
        name: str,
        run: Callable[[Connection], Awaitable[T]],
        *,
        isolation: Isolation = "read_committed",
        keeps_conversation_cache: bool = False,
    ) -> T:
        """Run ``run(conn)`` in the write transaction ``name``; retried whole on a
        serialization failure or a deadlock, so ``run`` must not have effects outside the
        transaction.  ``keeps_conversation_cache=False``: the job changes what this node's
        writer caches about conversations (members, keys), so the cache is dropped after it
        commits (other nodes see the change through the heads they lock)."""
        for attempt in range(RETRIES + 1):
            try:
                async with (
                    translating(),
                    self.pool.acquire() as conn,
                    transaction(conn, name, isolation=isolation),
                ):
                    result = await run(conn)
            except asyncpg.PostgresError as exc:
                if exc.sqlstate not in RETRY_STATES or attempt == RETRIES:
                    raise
                log.debug("txn %s retried after %s", name, exc.sqlstate)
                continue
            if not keeps_conversation_cache:
                self.writer.forget_conversations()
            return result
        raise AssertionError("unreachable")

    async def apply(self, op: Operation) -> AppendResult:
        async with translating():
            return await self.writer.apply(op)
