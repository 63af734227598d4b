"""The head watch on PostgreSQL (:mod:`chatd.store.postgres.head_watch`): two nodes, a head
moved by a transaction that commits after a later one, and the application role's rights."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.conftest import create_conv, make_users, post
from tests.store.postgres.test_accounts_nodes import app_dsn

__all__ = ["app_dsn"]  # the fixture: a database migrated by its owner, the application role


async def test_a_head_moved_by_a_transaction_that_commits_late_is_not_missed(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    """Versions come from a sequence and do not commit in the order they are drawn: a watch
    that moved past the later one at once would never name the earlier one."""
    async with PostgresStore(postgres_dsn, ring, checkpoint_log=tmp_path / "c") as store:
        alice, bob = await make_users(store, "alice", "bob")
        late_conv = (await create_conv(store, alice, [bob])).conv_id
        other = (await create_conv(store, alice, [bob])).conv_id
        watch = await store.head_watch()
        late = await asyncpg.connect(postgres_dsn)
        try:
            transaction = late.transaction()
            await transaction.start()
            await late.execute(  # draws its version first (the trigger), commits last
                "UPDATE conversations SET last_event_at = last_event_at + 1 WHERE id = $1",
                late_conv,
            )
            await post(store, other, bob, "commits first")
            assert (await watch.moved()).get(other) == 2
            await transaction.commit()
        finally:
            await late.close()
        assert late_conv in await watch.moved()


async def test_the_application_role_watches_two_nodes_appends(
    app_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    stores = [
        PostgresStore(app_dsn, ring, checkpoint_log=tmp_path / "n.checkpoints", migrate=False)
        for _ in range(2)
    ]
    for store in stores:
        await store.open()
    try:
        first, second = stores
        watch = await first.head_watch()
        alice, bob = await make_users(first, "alice", "bob")
        conv = (await create_conv(second, alice, [bob], first="de l'autre nœud")).conv_id
        assert (await watch.moved()).get(conv) == 2  # appended by the other node
    finally:
        for store in stores:
            await store.close()
