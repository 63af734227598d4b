"""A lease on a background job of the cluster: one node at a time does the job.

The lease is a session-level advisory lock (``pg_try_advisory_lock``) taken on a connection
of its own, opened for the lease and held for as long as the node holds it.  PostgreSQL
releases such a lock when the session ends, so a node that dies (or loses its connection)
loses its lease on its own, and another node takes it at its next attempt.  Nobody waits:
a node that does not get the lease tries again at the job's next interval.

A holder learns that it lost the lease only when it next uses the connection
(:meth:`AdvisoryLease.hold` checks it each time): for a moment two nodes may both believe
they hold it, so a job under a lease must stay correct when it runs twice at once (the
checkpoints do: their log's flock serialises the appends, and each appender replays the
other's records first).  The lease saves work; it is not what keeps the job right.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import asyncpg

from chatd.core.errors import ChatdError
from chatd.store.postgres.db import Record, connect

log = logging.getLogger("chatd.store")

CHECK_TIMEOUT_S = 5.0
# pg_try_advisory_lock's key for the checkpoints: the bytes "chatdckp" as a signed 64-bit int.
CHECKPOINT_LEASE = int.from_bytes(b"chatdckp", "big", signed=True)
# Any of these on the lease's connection: the session is gone or unusable, so is the lease.
# asyncpg's InternalClientError ("cannot switch to state …") is a connection the server ended
# (a fast shutdown) inside an operation, before its socket's close was seen.
LOST = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
    ChatdError,
)


class AdvisoryLease:
    def __init__(self, dsn: str, key: int, name: str) -> None:
        self._dsn = dsn
        self._key = key
        self._name = name
        self._conn: asyncpg.Connection[Record] | None = None
        self.held = False

    async def hold(self) -> bool:
        """Whether this node holds the lease now: checks the connection of a held lease
        (its session alive, the lock is still ours), else tries to take it."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                if self._conn is None or self._conn.is_closed():
                    self._conn, self.held = await connect(self._dsn), False
                if self.held:
                    await self._conn.fetchval("SELECT 1")
                else:
                    self.held = bool(
                        await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key)
                    )
                    if self.held:
                        log.info("this node now holds the %s lease", self._name)
        except LOST as exc:
            if self.held:
                log.warning("the %s lease was lost: %s", self._name, type(exc).__name__)
            await self._drop()
        return self.held

    async def release(self) -> None:
        """Give the lease back (closing its session releases the lock)."""
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn, self.held = self._conn, None, False
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=CHECK_TIMEOUT_S)
            except LOST:
                conn.terminate()
            except asyncio.CancelledError:
                conn.terminate()
                raise


def job_key(job: str) -> int:
    """The advisory lock key of a job's lease: 64 bits of SHA-256 of its name (the
    checkpoints keep their own key, :data:`CHECKPOINT_LEASE`)."""
    digest = hashlib.sha256(b"chatd lease " + job.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobLeases:
    """The leases of the cluster's background jobs, one :class:`AdvisoryLease` per job name,
    each on its own connection (opened when the job first asks)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._leases: dict[str, AdvisoryLease] = {}

    async def hold(self, job: str) -> bool:
        lease = self._leases.get(job)
        if lease is None:
            lease = self._leases[job] = AdvisoryLease(self._dsn, job_key(job), job)
        return await lease.hold()

    async def release_all(self) -> None:
        leases, self._leases = list(self._leases.values()), {}
        for lease in leases:
            await lease.release()
