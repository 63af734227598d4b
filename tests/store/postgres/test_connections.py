"""Connections to PostgreSQL keep the durability promise, and fail with our sentences.

"Ack after COMMIT" holds only if COMMIT waits for the disk: a connection on which it would
not (``synchronous_commit = off`` on the server, the database or the role; ``fsync = off``)
is refused before any use.  A server that does not answer is :class:`DatabaseUnavailable`
with the address, never the password.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg
import pytest

from chatd.core.errors import DatabaseUnavailable
from chatd.store.postgres import db
from chatd.store.postgres.failures import address, classify, translating
from tests.servers.postgres import PostgresServer
from tests.servers.processes import free_port


def _role(dsn: str, suffix: str) -> str:
    return f"chatd_{suffix}_{dsn.rsplit('/', 1)[-1]}"


async def _refused(dsn: str, setting: str, value: str) -> None:
    """Both a single connection and a pool refuse, naming the setting and its value."""
    for opening in (db.connect, db.create_pool):
        with pytest.raises(DatabaseUnavailable) as refused:
            await opening(dsn)
        assert f"{setting} = {value}" in refused.value.message
        assert "could be lost in a crash" in refused.value.message
        assert refused.value.message_in("fr") != refused.value.message


async def test_synchronous_commit_off_for_a_role_or_a_database_is_refused(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    database = postgres_dsn.rsplit("/", 1)[-1]
    lax, careful = _role(postgres_dsn, "lax"), _role(postgres_dsn, "careful")
    setup = await db.connect(postgres_dsn)
    try:
        await setup.execute(f"CREATE ROLE {lax} LOGIN")
        await setup.execute(f"ALTER ROLE {lax} SET synchronous_commit = off")
        await setup.execute(f"CREATE ROLE {careful} LOGIN")
        await setup.execute(f"ALTER ROLE {careful} SET synchronous_commit = remote_apply")
        await _refused(postgres_server.dsn(database, user=lax), "synchronous_commit", "off")

        # Stronger than on (waits for a standby too, when there is one): accepted.
        conn = await db.connect(postgres_server.dsn(database, user=careful))
        assert await conn.fetchval("SHOW synchronous_commit") == "remote_apply"
        await conn.close()

        await setup.execute(f"ALTER DATABASE {database} SET synchronous_commit = off")
        await _refused(postgres_dsn, "synchronous_commit", "off")
    finally:
        await setup.execute(f"DROP ROLE IF EXISTS {lax}")
        await setup.execute(f"DROP ROLE IF EXISTS {careful}")
        await setup.close()


@pytest.mark.parametrize(("setting", "value"), [("synchronous_commit", "off"), ("fsync", "off")])
async def test_a_server_that_does_not_wait_for_the_disk_is_refused(
    postgres_factory: Callable[..., PostgresServer], setting: str, value: str
) -> None:
    server = postgres_factory(settings={setting: value})
    await _refused(server.create_database("lax"), setting, value)


async def test_a_server_that_does_not_answer_is_unavailable_with_its_address() -> None:
    port = free_port("127.0.0.1")  # nothing listens there
    dsn = f"postgresql://chatd:s3cret-pw@127.0.0.1:{port}/chatd"
    for opening in (db.connect, db.create_pool):
        with pytest.raises(DatabaseUnavailable) as refused:
            await opening(dsn, connect_timeout_s=5)
        sentence = refused.value.message
        assert sentence == (
            f"database unavailable: no PostgreSQL server answers at 127.0.0.1:{port}/chatd"
        )
        assert "s3cret" not in sentence and "s3cret" not in refused.value.message_in("fr")
        assert "127.0.0.1" in refused.value.message_in("fr")


async def test_a_missing_database_is_unavailable(postgres_server: PostgresServer) -> None:
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        await db.connect(postgres_server.dsn("no_such_database"))


def test_the_address_never_holds_the_password() -> None:
    assert address("postgresql://u:pw@db.example:6432/chatd") == "db.example:6432/chatd"
    assert address("postgresql://u@/chatd?host=/run/pg&port=5433") == "/run/pg:5433/chatd"
    assert address("postgresql://localhost") == "localhost:5432/?"


def test_rule_refusals_and_the_code_s_mistakes_are_left_as_they_are() -> None:
    """A trigger's refusal (class 23), a retryable conflict (40) or a bad statement (42) say
    nothing about the database's state: the caller handles them."""
    for state in ("23000", "23505", "40001", "40P01", "42601", "57014"):
        exc = asyncpg.PostgresError.new({"C": state, "M": "x"})
        assert classify(exc) is None, state
    for state in ("08006", "53100", "57P01", "58030", "28P01", "3D000"):
        ours = classify(asyncpg.PostgresError.new({"C": state, "M": "x"}))
        assert isinstance(ours, DatabaseUnavailable), state
    damaged = classify(asyncpg.PostgresError.new({"C": "XX001", "M": "bad page"}))
    assert damaged is not None and damaged.code == "database_damaged"


async def test_a_slow_transaction_is_logged_with_its_name(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await db.connect(postgres_dsn)
    try:
        with caplog.at_level(logging.WARNING, logger="chatd.store"):
            async with db.transaction(conn, "quick_one"):
                await conn.execute("SELECT 1")
            async with db.transaction(conn, "slow_one", readonly=True):
                await conn.execute("SELECT pg_sleep(0.25)")
        said = [r.getMessage() for r in caplog.records]
        assert any(s.startswith("txn slow_one took ") for s in said), said
        assert not any("quick_one" in s for s in said)
    finally:
        await conn.close()


async def test_a_transaction_commits_or_rolls_back_as_a_whole(postgres_dsn: str) -> None:
    conn = await db.connect(postgres_dsn)
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        async with db.transaction(conn, "both") as txn:
            await txn.execute("INSERT INTO t VALUES (1), (2)")
        with pytest.raises(asyncpg.UniqueViolationError):
            async with db.transaction(conn, "half") as txn:
                await txn.execute("INSERT INTO t VALUES (3)")
                await txn.execute("INSERT INTO t VALUES (1)")
        assert [r["id"] for r in await conn.fetch("SELECT id FROM t ORDER BY id")] == [1, 2]
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            async with db.transaction(conn, "reading", readonly=True) as txn:
                await txn.execute("INSERT INTO t VALUES (4)")
    finally:
        await conn.close()


async def test_a_lost_server_is_unavailable_inside_a_transaction(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    server = postgres_factory()
    conn = await db.connect(server.create_database("gone"))
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.transaction(conn, "interrupted"):
                await conn.execute("SELECT 1")
                server.stop("immediate")
                await conn.execute("SELECT 2")
    finally:
        conn.terminate()


async def test_a_connection_ended_by_the_server_is_unavailable() -> None:
    """A fast shutdown of PostgreSQL ends every session with 57P01; a pooled connection that
    was inside an operation then, or got the error before its socket's close was seen, is in
    a protocol state asyncpg cannot go on from, and its next use (a BEGIN, the reset when the
    pool takes it back) raises an ``InternalClientError``.  Found by the cluster chaos run
    (``tests/chaos/test_chaos_cluster.py``), where PostgreSQL restarts gave internal errors."""
    for words in (
        "cannot switch to state 15; another operation (1) is in progress",
        'cannot switch to state 15; protocol is in the "failed" state',
    ):
        with pytest.raises(DatabaseUnavailable):
            async with translating():
                raise asyncpg.InternalClientError(words)
    # Any other of asyncpg's internal errors is left as it is.
    with pytest.raises(asyncpg.InternalClientError):
        async with translating():
            raise asyncpg.InternalClientError("unexpected codec")
