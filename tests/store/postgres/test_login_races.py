"""A login and a password reset at the same instant on two nodes (PostgreSQL): the login's
token is recorded in a transaction that waits for the reset's, then reads the new hash and
refuses, so no token outlives the reset's revocation of every token."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg
import pytest

from chatd.core.errors import InvalidCredentialsError
from chatd.core.records import SessionToken
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.conftest import make_user

WAIT_S = 30.0  # a generous bound on a busy machine


async def waiting_on_a_lock(admin: asyncpg.Connection) -> None:
    """Until some session waits on a row lock (the login's ``FOR SHARE``)."""
    async with asyncio.timeout(WAIT_S):
        while not await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ):
            await asyncio.sleep(0.05)  # the server's state has no event to await


async def test_a_login_racing_a_reset_waits_for_it_and_records_no_token(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    async with PostgresStore(postgres_dsn, ring, checkpoint_log=tmp_path / "c") as store:
        alice = await make_user(store, "alice")
        reset = await asyncpg.connect(postgres_dsn)  # the other node's reset, not committed yet
        try:
            transaction = reset.transaction()
            await transaction.start()
            await reset.execute("UPDATE users SET password_hash = 'reset' WHERE id = $1", alice.id)
            token = SessionToken(hashlib.sha256(b"t").digest(), alice.id, 1, 3_600_000)
            login = asyncio.create_task(
                store.create_session_token(token, password_hash=alice.password_hash)
            )
            await waiting_on_a_lock(reset)
            assert not login.done()
            await transaction.commit()
            with pytest.raises(InvalidCredentialsError):
                await asyncio.wait_for(login, WAIT_S)
        finally:
            await reset.close()
        assert await store.find_session_token(token.token_hash) is None
