"""Leases of the cluster's background jobs on PostgreSQL: one node at a time holds a job;
when the holder closes, or its session dies, another node takes it at its next attempt."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.lease import CHECKPOINT_LEASE, AdvisoryLease, job_key
from chatd.store.postgres.store import PostgresStore


def _node(dsn: str, ring: KeyRing, directory: Path, name: str) -> PostgresStore:
    return PostgresStore(dsn, ring, checkpoint_log=directory / f"{name}.checkpoints")


async def test_one_node_holds_a_job_until_it_stops_or_its_session_dies(
    tmp_path: Path, ring: KeyRing, postgres_dsn: str
) -> None:
    async with (
        _node(postgres_dsn, ring, tmp_path, "a") as a,
        _node(postgres_dsn, ring, tmp_path, "b") as b,
    ):
        assert await a.hold_lease("attachment_sweep")
        assert not await b.hold_lease("attachment_sweep")
        assert await b.hold_lease("mailbox_sync")  # another job, another lease
        assert not await a.hold_lease("mailbox_sync")

        # The holder's session dies (a node killed, a network cut): PostgreSQL ends it, and
        # its advisory locks with it (the call waits, up to 30 s, for the session to end).
        admin = await asyncpg.connect(postgres_dsn)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(l.pid, 30000)) FROM pg_locks l"
                " WHERE l.locktype = 'advisory'"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint",
                job_key("attachment_sweep"),
            )
        finally:
            await admin.close()
        assert ended == 1
        assert await b.hold_lease("attachment_sweep")
        assert not await a.hold_lease("attachment_sweep")  # a learns it lost it

    async with _node(postgres_dsn, ring, tmp_path, "c") as c:
        assert await c.hold_lease("attachment_sweep")  # b stopped: its leases went with it


class _BrokenSession:
    """A lease connection whose session PostgreSQL ended inside an operation (a fast
    shutdown) before asyncpg saw the socket close: every use raises InternalClientError."""

    def __init__(self) -> None:
        self.terminated = False

    def is_closed(self) -> bool:
        return False

    async def fetchval(self, *args: object) -> object:
        raise asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        )

    async def close(self) -> None:
        raise asyncpg.InternalClientError("cannot switch to state 12")

    def terminate(self) -> None:
        self.terminated = True


async def test_a_lease_on_a_session_the_server_ended_is_lost_and_its_connection_dropped() -> None:
    """Found by the cluster chaos run (``bench.chaos --nodes 3 --backend postgres``): after a
    PostgreSQL restart the checkpoint lease's connection raised InternalClientError, which
    escaped as an ERROR and kept the dead connection for the next interval."""
    broken = _BrokenSession()
    for held in (True, False):  # checking a held lease, or trying to take it
        lease = AdvisoryLease("postgresql://unused", CHECKPOINT_LEASE, "checkpoint")
        lease._conn, lease.held = broken, held  # type: ignore[assignment]
        assert await lease.hold() is False
        assert lease._conn is None and broken.terminated
        broken.terminated = False
