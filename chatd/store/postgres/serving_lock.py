"""The serving nodes' claim on a PostgreSQL database, and the admin commands that need it alone.

SQLite's server lock (:mod:`chatd.store.sqlite.lock`) is a ``flock`` beside the file: one
server, and the commands that would leave it with a stale view (a key rotation, a key's
retirement, a new epoch, a declared rewind) refuse while it runs.  On PostgreSQL several
nodes run at once and none of them shares a file system with the operator's shell, so the
claim is the database's own: a session-level advisory lock on :data:`SERVING_LOCK`.

* **Every node holds it shared** (:class:`ServingClaim`, ``pg_try_advisory_lock_shared``)
  on a connection of its own, for its whole life: any number of nodes hold it together.
  PostgreSQL releases it when the session ends, so a node that dies never leaves it behind.
  A node whose claim's session was lost (a PostgreSQL restart) takes it again at its next
  check (:meth:`ServingClaim.keep`, once every :data:`KEEP_EVERY_S`), so that an admin
  command run after the restart still sees it.
* **A command that needs the database alone takes it exclusive** (:class:`SoleUse`,
  ``pg_try_advisory_lock``): refused at once, with the sentence of SQLite's lock, while any
  node (or another such command) holds it; held until the command ends, so that no node
  starts in the middle of a key rotation (a node that tries refuses to start, as a second
  ``chatd serve`` does on SQLite).  Nobody waits: a refusal is immediate and says why.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

import asyncpg

from chatd.core.errors import ServerRunningError
from chatd.i18n import N_, Text
from chatd.store.postgres.db import Record, connect
from chatd.store.postgres.failures import address
from chatd.store.postgres.lease import LOST

log = logging.getLogger("chatd.store")

# The advisory lock key: the bytes "chatdsrv" as a signed 64-bit int.
SERVING_LOCK = int.from_bytes(b"chatdsrv", "big", signed=True)
KEEP_EVERY_S = 5.0
CHECK_TIMEOUT_S = 5.0

NODES_RUNNING = N_(
    "A chatd node (or another admin command) is using the PostgreSQL database {address};"
    " stop every node before you {purpose}."
)
COMMAND_RUNNING = N_(
    "An admin command is using the PostgreSQL database {address} alone; start the node"
    " once it has finished."
)


class SoleUse:
    """An admin command's exclusive claim, as a context manager (``async with``)."""

    def __init__(self, dsn: str, purpose: str) -> None:
        """``purpose``: a message id marked with ``N_`` that completes "stop every node
        before you …" (``N_("rotate the master key")``), as for SQLite's lock."""
        self._dsn = dsn
        self._purpose = purpose
        self._conn: asyncpg.Connection[Record] | None = None

    async def __aenter__(self) -> Self:
        conn = await connect(self._dsn)
        try:
            alone = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", SERVING_LOCK))
        except BaseException:
            await _close(conn)
            raise
        if not alone:
            await _close(conn)
            raise ServerRunningError(
                NODES_RUNNING, address=address(self._dsn), purpose=Text(self._purpose)
            )
        self._conn = conn
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)  # ending the session releases the lock


class ServingClaim:
    """A node's shared claim, held for its life and taken again if its session is lost."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection[Record] | None = None
        self._keeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if not await self._take():
            raise ServerRunningError(COMMAND_RUNNING, address=address(self._dsn))
        self._keeper = asyncio.get_running_loop().create_task(
            self._keep_forever(), name="chatd-serving-claim"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def keep(self) -> bool:
        """Check the claim's session; take the claim again if it was lost.  Whether held."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                if self.held:
                    assert self._conn is not None
                    await self._conn.fetchval("SELECT 1")
                    return True
        except LOST as exc:
            log.warning("the serving claim's session was lost: %s", type(exc).__name__)
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()
        return await self._take()

    async def _take(self) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                conn = await connect(self._dsn)
        except LOST as exc:
            log.warning("the serving claim could not be taken: %s", type(exc).__name__)
            return False
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                shared = await conn.fetchval("SELECT pg_try_advisory_lock_shared($1)", SERVING_LOCK)
        except LOST as exc:
            log.warning("the serving claim could not be taken: %s", type(exc).__name__)
            conn.terminate()
            return False
        if not shared:
            await _close(conn)
            log.error("an admin command holds the database alone: the serving claim waits")
            return False
        self._conn = conn
        return True

    async def _keep_forever(self) -> None:
        while True:
            await asyncio.sleep(KEEP_EVERY_S)  # a period, not a synchronisation
            await self.keep()


async def _close(conn: asyncpg.Connection[Record]) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=CHECK_TIMEOUT_S)
    except LOST:
        conn.terminate()
    except asyncio.CancelledError:
        conn.terminate()
        raise
