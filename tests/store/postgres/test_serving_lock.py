"""The serving nodes' claim on a PostgreSQL database (:mod:`chatd.store.postgres.serving_lock`):
any number of nodes share it, an admin command that needs the database alone is refused
while one holds it and keeps nodes from starting while it runs, and a node whose claim's
session was lost takes the claim again."""

from __future__ import annotations

import asyncpg
import pytest

from chatd.core.errors import ServerRunningError
from chatd.i18n import N_
from chatd.store.postgres.migrations import migrate
from chatd.store.postgres.serving_lock import ServingClaim, SoleUse

ROTATE = N_("rotate the master key")


async def migrated(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def test_nodes_share_the_claim_and_an_admin_command_waits_for_all_of_them(
    postgres_dsn: str,
) -> None:
    await migrated(postgres_dsn)
    async with ServingClaim(postgres_dsn), ServingClaim(postgres_dsn):  # two nodes at once
        with pytest.raises(ServerRunningError) as refused:
            async with SoleUse(postgres_dsn, ROTATE):
                pytest.fail("an admin command ran beside serving nodes")
        assert refused.value.code == "server_running"
        assert "stop every node before you" in str(refused.value)
        assert "password" not in str(refused.value)  # the address only, never credentials
    async with SoleUse(postgres_dsn, ROTATE):  # every node gone: it goes through
        with pytest.raises(ServerRunningError, match="admin command"):
            async with ServingClaim(postgres_dsn):  # and no node starts meanwhile
                pytest.fail("a node started during an admin command")
        with pytest.raises(ServerRunningError):
            async with SoleUse(postgres_dsn, ROTATE):  # nor a second such command
                pytest.fail("two admin commands had the database alone")
    async with ServingClaim(postgres_dsn):  # the command over: nodes start again
        pass


async def test_a_claim_whose_session_was_lost_is_taken_again(postgres_dsn: str) -> None:
    """A PostgreSQL restart ends the node's session and with it the lock; the node's next
    check takes it again, so an admin command run afterwards still sees the node."""
    await migrated(postgres_dsn)
    admin = await asyncpg.connect(postgres_dsn)
    try:
        async with ServingClaim(postgres_dsn) as claim:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND mode = 'ShareLock'"
            )
            assert killed == 1
            async with SoleUse(postgres_dsn, ROTATE):  # the claim is gone for now
                pass
            assert await claim.keep()
            with pytest.raises(ServerRunningError):
                async with SoleUse(postgres_dsn, ROTATE):
                    pytest.fail("the node's claim was not taken again")
    finally:
        await admin.close()
