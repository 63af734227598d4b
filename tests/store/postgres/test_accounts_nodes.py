"""Accounts on PostgreSQL when several nodes share the database (what SQLite's single writer
never meets): the first directory key, the audit chain's head read from an old snapshot, one
login created on two nodes at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from chatd.core.audit import ActionKind, Actor, AdminAction, AuditQuery
from chatd.core.errors import LoginTakenError
from chatd.core.records import NewUser, UserProfile
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres import db
from chatd.store.postgres.audit import append_admin_action_txn
from chatd.store.postgres.store import PostgresStore
from tests.conftest import FAKE_PASSWORD_HASH

ALICE = Actor.os_user("alice")


def retired(target: str) -> AdminAction:
    return AdminAction(ALICE, ActionKind.KEY_RETIRED, target)


async def test_nodes_opening_a_fresh_database_at_once_share_one_directory_key(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    nodes = [
        PostgresStore(postgres_dsn, ring, checkpoint_log=tmp_path / f"n{i}.checkpoints")
        for i in range(4)
    ]
    await asyncio.gather(*(node.open() for node in nodes))
    try:
        made = [
            await node.create_user(NewUser(f"user{i}", FAKE_PASSWORD_HASH, UserProfile("A", "B")))
            for i, node in enumerate(nodes)
        ]
        for node in nodes:  # every node opens every profile: one key sealed them all
            assert await node.list_users() == made
    finally:
        for node in nodes:
            await node.close()


async def test_one_login_created_on_two_nodes_at_once_is_created_once(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    nodes = [
        PostgresStore(postgres_dsn, ring, checkpoint_log=tmp_path / f"n{i}.checkpoints")
        for i in range(2)
    ]
    for node in nodes:
        await node.open()
    try:
        results = await asyncio.gather(
            *(
                node.create_user(NewUser("Same", FAKE_PASSWORD_HASH, UserProfile(str(i), "B")))
                for i, node in enumerate(nodes * 3)
            ),
            return_exceptions=True,
        )
        created = [r for r in results if not isinstance(r, BaseException)]
        assert len(created) == 1
        assert all(isinstance(r, LoginTakenError) for r in results if r not in created)
        assert await nodes[1].list_users() == created
    finally:
        for node in nodes:
            await node.close()


async def test_an_append_from_a_snapshot_older_than_the_head_is_retried(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    """A caller in a REPEATABLE READ transaction reads the head of its snapshot; when another
    node appended since, its insert collides and comes out as a serialization failure (which
    the store's write retries, whole), never as a broken chain."""
    store = PostgresStore(postgres_dsn, ring, checkpoint_log=tmp_path / "n.checkpoints")
    await store.open()
    conn = await db.connect(postgres_dsn)
    try:
        await store.append_admin_action(retired("k1"))
        async with db.transaction(conn, "stale", isolation="repeatable_read"):
            await conn.fetchval("SELECT count(*) FROM admin_audit")  # the snapshot starts
            await store.append_admin_action(retired("k2"))  # another node, committed
            with pytest.raises(asyncpg.SerializationError):
                await append_admin_action_txn(conn, store._ctx.keys, retired("k3"), 5)
        entries = await store.admin_actions(AuditQuery())
        assert [e.action.target for e in entries] == ["k1", "k2"]
    finally:
        await conn.close()
        await store.close()
