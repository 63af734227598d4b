"""Accounts on PostgreSQL as the nodes run them: several nodes on one database (what SQLite's
single writer never meets: the first directory key, the audit chain's head read from an old
snapshot, one login created on two nodes at once), and as the application role, whose
privileges are only the statements the store makes (the contract suite connects as the
superuser, which nothing refuses)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from chatd.core.audit import ActionKind, Actor, AdminAction, AuditQuery
from chatd.core.errors import LoginTakenError
from chatd.core.login_throttle import ThrottleLimits
from chatd.core.records import NewUser, SessionToken, UserProfile
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres import db, migrations
from chatd.store.postgres.audit import append_admin_action_txn
from chatd.store.postgres.store import PostgresStore
from tests.conftest import FAKE_PASSWORD_HASH
from tests.servers.postgres import PostgresServer

ALICE = Actor.os_user("alice")
_numbers = itertools.count(1)


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


@pytest.fixture
def app_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A database migrated by its owner, and the DSN of an application role granted exactly
    the store's privileges (:mod:`chatd.store.postgres.privileges`)."""
    if not postgres_server.running:
        postgres_server.start()
    number = next(_numbers)
    database, role = f"accounts_{os.getpid()}_{number}", f"chatd_acc_{os.getpid()}_{number}"
    postgres_server.create_database(database)
    postgres_server.psql(f"CREATE ROLE {role} LOGIN")
    try:
        asyncio.run(_migrate(postgres_server.dsn(database), role))
        yield postgres_server.dsn(database, user=role)
    finally:
        if not postgres_server.running:
            postgres_server.start()
        postgres_server.drop_database(database)
        postgres_server.psql(f"DROP ROLE IF EXISTS {role}")


async def _migrate(dsn: str, role: str) -> None:
    conn = await db.connect(dsn)
    try:
        await migrations.migrate(conn, app_role=role)
    finally:
        await conn.close()


async def test_the_application_role_may_do_everything_accounts_do(
    app_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    nodes = [
        PostgresStore(app_dsn, ring, checkpoint_log=tmp_path / f"n{i}.checkpoints", migrate=False)
        for i in range(2)
    ]
    for node in nodes:
        await node.open()
    try:
        store = nodes[0]
        created = AdminAction(ALICE, ActionKind.USER_CREATED)
        user = await store.create_user(
            NewUser("claire", FAKE_PASSWORD_HASH, UserProfile("C", "D")), audit=created
        )
        assert await store.find_user_by_login("Claire") == user
        disabled = AdminAction(ALICE, ActionKind.USER_DISABLED)
        await store.set_user_disabled(user.id, True, audit=disabled)
        await store.set_user_disabled(user.id, False)
        await store.set_user_language(user.id, "en")
        await store.set_terms_accepted(user.id, "2026-01")
        keep, other = hashlib.sha256(b"keep").digest(), hashlib.sha256(b"other").digest()
        for digest in (keep, other, hashlib.sha256(b"third").digest()):
            await store.create_session_token(SessionToken(digest, user.id, 1, 10**13))
        assert await store.find_session_token(keep) is not None
        assert await store.revoke_other_session_tokens(user.id, keep, 2) != []
        assert await store.invalid_session_tokens([keep, other], 3) == {other}
        await store.change_password(
            user.id, "new", expected_hash=FAKE_PASSWORD_HASH, keep_token=keep, now_ms=4
        )
        reset = AdminAction(ALICE, ActionKind.PASSWORD_RESET)
        assert await store.reset_password(user.id, "newer", now_ms=5, audit=reset) == 1
        assert await store.revoke_session_token(keep, 6) is False  # revoked by the reset
        await store.create_session_token(SessionToken(bytes(32), user.id, 1, 2))
        assert await store.purge_session_tokens(3) == 1
        await store.append_admin_action(retired("k1"))
        limits = ThrottleLimits(per_login=5, per_address=8, overall=20, window_ms=60_000)
        attempts = await asyncio.gather(
            *(node.begin_login_attempt("claire", "10.0.0.1", limits, 100) for node in nodes * 3)
        )
        ids = [a.attempt for a in attempts if a.attempt is not None]
        assert len(ids) == 5
        await nodes[1].end_login_attempt(ids[0], succeeded=False, now_ms=101)
        await nodes[1].end_login_attempt(ids[1], succeeded=True, now_ms=102)
        await store.begin_login_attempt("claire", "10.0.0.1", limits, 60_200)  # forgets
        entries = await nodes[1].admin_actions(AuditQuery())
        assert [e.action.kind for e in entries] == [
            ActionKind.USER_CREATED,
            ActionKind.USER_DISABLED,
            ActionKind.PASSWORD_RESET,
            ActionKind.KEY_RETIRED,
        ]
    finally:
        for node in nodes:
            await node.close()
