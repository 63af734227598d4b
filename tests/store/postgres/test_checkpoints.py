"""Checkpoints in a cluster, and what ``verify`` catches on PostgreSQL.

The counterpart of tests/store/test_checkpoints.py and test_tamper.py, which edit SQLite's
file.  Here several stores (nodes) share one database and one checkpoint log: one holds the
checkpoint lease and takes the checkpoints, of every node's appends; another takes over when
it stops or its session dies.  The attacker is the owner role with psql: it disables the
append-only triggers, edits rows, and enables them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest

from chatd.core.audit import ActionKind, Actor, AdminAction
from chatd.core.checkpoint_audit import DepartureKind, audit_records
from chatd.core.checkpoints import ADMIN_AUDIT_CHAIN, Checkpoint, conversation_chain
from chatd.core.errors import DatabaseUnavailable
from chatd.crypto.keyring import KeyRing
from chatd.store.checkpoint_log import CheckpointLog
from chatd.store.checkpointer import checkpoint_key
from chatd.store.postgres.chain_reads import changed_heads_txn
from chatd.store.postgres.db import transaction
from chatd.store.postgres.history import PostgresHistory, Watermark
from chatd.store.postgres.migrations import migrate
from chatd.store.postgres.store import PostgresStore
from tests.conftest import create_conv, make_users, post

OPERATOR = Actor.os_user("root")
INTERVAL = 0.05
WAIT = 10.0


class Nodes:
    """Stores on one database and one log, closed at the end of the test."""

    def __init__(self, dsn: str, log: Path, ring: KeyRing) -> None:
        self.dsn, self.log, self.ring = dsn, log, ring
        self.opened: list[PostgresStore] = []

    async def open(self) -> PostgresStore:
        store = PostgresStore(
            self.dsn, self.ring, checkpoint_log=self.log, checkpoint_seconds=INTERVAL
        )
        await store.open()
        self.opened.append(store)
        return store


@pytest.fixture
async def nodes(postgres_dsn: str, tmp_path: Path, ring: KeyRing) -> AsyncIterator[Nodes]:
    made = Nodes(postgres_dsn, tmp_path / "chatd.checkpoints", ring)
    yield made
    for store in made.opened:
        await store.close()


def holds(store: PostgresStore) -> bool:
    return store._history.holds_lease


async def audited(store: PostgresStore, target: str) -> int:
    entry = await store.append_admin_action(
        AdminAction(OPERATOR, ActionKind.USER_DISABLED).with_target(target)
    )
    return entry.seq


async def checkpoint_naming(nodes: Nodes, chain: str, seq: int) -> Checkpoint:
    """The first checkpoint in the log that holds ``chain`` at ``seq`` or later."""
    async with asyncio.timeout(WAIT):
        while True:
            lines, _ = CheckpointLog(nodes.log).read_from(0)
            audit = audit_records(lines, lambda kid: checkpoint_key(nodes.ring, kid))
            assert audit.ok, audit.problems
            head = audit.heads.heads.get(chain)
            if head is not None and head.seq >= seq:
                assert audit.last is not None
                return audit.last
            await asyncio.sleep(INTERVAL)


async def followed(store: PostgresStore, n: int) -> Checkpoint:
    async with asyncio.timeout(WAIT):
        return await store.wait_for_checkpoint(n)


async def owner_sql(dsn: str, *statements: str) -> None:
    """The attacker: the owner role, triggers disabled around its edits."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for table in ("events", "admin_audit", "conversations", "users", "memberships"):
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for statement in statements:
                await conn.execute(statement)
            for table in ("events", "admin_audit", "conversations", "users", "memberships"):
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await conn.close()


def problems(report: object) -> list[str]:
    return [str(p.reason) for p in report.problems]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- the lease


async def test_one_node_holds_the_lease_and_checkpoints_every_nodes_appends(
    nodes: Nodes,
) -> None:
    first, second = await nodes.open(), await nodes.open()
    assert holds(first) and not holds(second)
    seq = await audited(second, "1")  # appended by the node that does not checkpoint
    taken = await checkpoint_naming(nodes, ADMIN_AUDIT_CHAIN, seq)
    assert (await followed(first, taken.n)).n >= taken.n
    # The other node follows the log without appending to it.
    assert (await followed(second, taken.n)).n >= taken.n
    assert not holds(second)
    assert (await second.verify()).ok


async def test_another_node_takes_over_when_the_holder_stops(nodes: Nodes) -> None:
    first, second = await nodes.open(), await nodes.open()
    await audited(first, "1")
    await first.close()  # the clean stop's checkpoint, then the lease is given back
    async with asyncio.timeout(WAIT):
        while not holds(second):
            await asyncio.sleep(INTERVAL)
    seq = await audited(second, "2")
    await checkpoint_naming(nodes, ADMIN_AUDIT_CHAIN, seq)
    assert (await second.verify()).ok


async def test_a_dead_holders_lease_ends_with_its_session(nodes: Nodes, postgres_dsn: str) -> None:
    first, second = await nodes.open(), await nodes.open()
    # The holder dies: it stops ticking, and its lease session ends (a crash, a cut network).
    task = first._history._task
    assert task is not None
    task.cancel()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    async with asyncio.timeout(WAIT):
        while not holds(second):
            await asyncio.sleep(INTERVAL)
    seq = await audited(first, "3")
    await checkpoint_naming(nodes, ADMIN_AUDIT_CHAIN, seq)
    # The old holder, back, learns that it lost the lease: it does not get it again.
    lease = first._history._lease
    assert lease is not None
    assert not await lease.hold()  # its session is gone
    assert not await lease.hold()  # and the lock is the other node's now
    assert (await first.verify()).ok


async def test_conversations_of_both_nodes_are_checkpointed(nodes: Nodes) -> None:
    first, second = await nodes.open(), await nodes.open()
    alice, bob = await make_users(second, "alice", "bob")
    conv = (await create_conv(second, alice, [bob], first="bonjour")).conv_id
    await post(second, conv, bob, "salut")
    await checkpoint_naming(nodes, conversation_chain(conv), 2)
    assert await first.checkpoint_departures() == []
    assert (await first.verify()).ok


async def test_an_epoch_declared_beside_the_holder_is_named_by_its_checkpoints(
    nodes: Nodes,
) -> None:
    """An operator's command is a store that does not hold the lease: its checkpoint names
    the new epoch at once, and the holder's next ones name it too (else verify would find
    the database's epoch differing from the last checkpoint's)."""
    holder, command = await nodes.open(), await nodes.open()
    epoch = await command.declare_new_epoch(audit=AdminAction(OPERATOR, ActionKind.EPOCH_DECLARED))
    last = command.checkpoint_state().last
    assert last is not None and last.epoch == epoch
    await command.close()
    seq = await audited(holder, "4")
    taken = await checkpoint_naming(nodes, ADMIN_AUDIT_CHAIN, seq)
    assert taken.epoch == epoch
    assert (await holder.verify()).ok


async def test_every_head_of_two_busy_nodes_reaches_the_log(nodes: Nodes) -> None:
    """Both nodes post at once while the holder checkpoints every few milliseconds with a
    short margin (the watermark moves during the test): when both have stopped, the log
    holds every conversation's last head."""
    first, second = await nodes.open(), await nodes.open()
    for node in (first, second):
        node._history.watermark = Watermark(margin_s=0.2)
    alice, bob = await make_users(first, "alice", "bob")
    convs = [(await create_conv(first, alice, [bob])).conv_id for _ in range(4)]

    async def busy(node: PostgresStore, sender: int, n: int) -> None:
        for i in range(n):
            await post(node, convs[i % len(convs)], sender, f"m{i}")

    await asyncio.gather(busy(first, alice, 60), busy(second, bob, 60))
    await second.close()
    await first.close()
    lines, _ = CheckpointLog(nodes.log).read_from(0)
    audit = audit_records(lines, lambda kid: checkpoint_key(nodes.ring, kid))
    assert audit.ok, audit.problems
    conn = await asyncpg.connect(nodes.dsn)
    try:
        heads = {
            conversation_chain(r["id"]): (r["last_seq"], bytes(r["last_hash"]))
            for r in await conn.fetch("SELECT id, last_seq, last_hash FROM conversations")
        }
    finally:
        await conn.close()
    logged = {chain: (h.seq, h.hash) for chain, h in audit.heads.heads.items()}
    assert {c: logged.get(c) for c in heads} == heads
    assert sum(seq for seq, _ in heads.values()) == 4 + 120


# ---------------------------------------------------------------------- the watermark


async def test_a_head_version_committed_late_is_not_missed(postgres_dsn: str) -> None:
    """Sequence values do not commit in order: 5 may commit after 9.  A reader that moved
    its watermark to the highest value seen would never read the 5."""
    setup = await asyncpg.connect(postgres_dsn)
    late = await asyncpg.connect(postgres_dsn)
    reader = await asyncpg.connect(postgres_dsn)
    try:
        await migrate(setup)
        await setup.execute(
            "INSERT INTO conversations (id, created_at, last_seq, last_hash, last_event_at, name)"
            " VALUES (1, 1, 1, '\\x01', 1, '\\x00'), (2, 1, 1, '\\x02', 1, '\\x00')"
        )
        watermark = Watermark(margin_s=0.0)

        async def read() -> dict[int, tuple[int, bytes]]:
            async with transaction(reader, "read", readonly=True, isolation="repeatable_read"):
                changes = await changed_heads_txn(reader, watermark.since)
            watermark.seen(changes)
            return changes.heads

        await read()
        tx = late.transaction()
        await tx.start()
        await late.execute("UPDATE conversations SET last_seq = 2 WHERE id = 1")  # draws first
        await setup.execute("UPDATE conversations SET last_seq = 2 WHERE id = 2")  # commits first
        assert (await read())[2][0] == 2
        await tx.commit()
        assert (await read())[1][0] == 2  # the late commit is read
        await read()
        assert 1 not in await read()  # and the watermark does move on
    finally:
        for conn in (setup, late, reader):
            await conn.close()


def test_the_watermark_waits_for_the_margin() -> None:
    from chatd.store.postgres.chain_reads import Changes

    clock = [0.0]
    mark = Watermark(margin_s=10.0, full_read_s=1000.0, now=lambda: clock[0])
    mark.seen(Changes({}, top=5, xmin=100, xmax=101, epoch=None))
    clock[0] = 5.0
    mark.seen(Changes({}, top=9, xmin=200, xmax=201, epoch=None))
    assert mark.since == 0  # too recent
    clock[0] = 11.0
    mark.seen(Changes({}, top=9, xmin=150, xmax=201, epoch=None))
    assert mark.since == 5  # the first read is old enough and its transactions ended
    clock[0] = 20.0
    mark.seen(Changes({}, top=9, xmin=150, xmax=201, epoch=None))
    assert mark.since == 5  # a transaction the second read counted is still running
    clock[0] = 2000.0
    mark.seen(Changes({}, top=12, xmin=300, xmax=301, epoch=None))
    assert mark.since == 0  # a full read now and then


# ---------------------------------------------------------------------- tampering


async def test_an_audit_record_edited_by_the_owner_is_caught(
    nodes: Nodes, postgres_dsn: str
) -> None:
    store = await nodes.open()
    await audited(store, "1")
    await audited(store, "2")
    await owner_sql(postgres_dsn, "UPDATE admin_audit SET target = '7' WHERE seq = 1")
    assert any("hash mismatch" in p for p in problems(await store.verify()))


async def test_a_user_row_edited_by_the_owner_is_caught(nodes: Nodes, postgres_dsn: str) -> None:
    store = await nodes.open()
    await make_users(store, "alice")
    await owner_sql(postgres_dsn, "UPDATE users SET disabled = TRUE")
    assert not (await store.verify()).ok


async def test_a_cut_audit_log_departs_from_the_checkpoint(nodes: Nodes, postgres_dsn: str) -> None:
    store = await nodes.open()
    await audited(store, "1")
    seq = await audited(store, "2")
    await checkpoint_naming(nodes, ADMIN_AUDIT_CHAIN, seq)
    await owner_sql(postgres_dsn, f"DELETE FROM admin_audit WHERE seq = {seq}")
    kinds = {d.chain: d.kind for d in await store.checkpoint_departures()}
    assert kinds == {ADMIN_AUDIT_CHAIN: DepartureKind.SHORTER}
    assert not (await store.verify()).ok


async def test_an_event_edited_by_the_owner_is_caught(nodes: Nodes, postgres_dsn: str) -> None:
    store = await nodes.open()
    alice, bob = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, alice, [bob], first="un")).conv_id
    await post(store, conv, bob, "deux")
    assert (await store.verify()).ok
    await owner_sql(
        postgres_dsn,
        f"UPDATE events SET ciphertext = ciphertext || '\\x00'::bytea"
        f" WHERE conv_id = {conv} AND seq = 2",
    )
    report = await store.verify()
    assert [(p.conv_id, p.seq) for p in report.problems] == [(conv, 2)]


async def test_a_cut_tail_with_its_head_rewritten_departs(nodes: Nodes, postgres_dsn: str) -> None:
    store = await nodes.open()
    alice, bob = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, alice, [bob], first="un")).conv_id
    await post(store, conv, bob, "deux")
    await checkpoint_naming(nodes, conversation_chain(conv), 3)  # created, "un", "deux"
    await owner_sql(
        postgres_dsn,
        f"DELETE FROM events WHERE conv_id = {conv} AND seq = 3",
        f"DELETE FROM idempotency_keys WHERE scope_conv = {conv}",
        f"UPDATE conversations SET last_seq = 2, last_message_seq = 2,"
        f" last_hash = (SELECT hash FROM events WHERE conv_id = {conv} AND seq = 2),"
        f" last_event_at = (SELECT ts FROM events WHERE conv_id = {conv} AND seq = 2)"
        f" WHERE id = {conv}",
    )
    assert (await store.verify(checkpoint_log=None, conv_ids=[conv])).ok  # every chain links
    kinds = {d.chain: d.kind for d in await store.checkpoint_departures()}
    assert kinds == {conversation_chain(conv): DepartureKind.SHORTER}
    assert any("checkpoint" in p for p in problems(await store.verify()))


async def test_a_missing_log_for_a_database_with_history_is_a_problem(
    nodes: Nodes,
) -> None:
    store = await nodes.open()
    await audited(store, "1")
    await store.close()
    nodes.log.unlink()
    again = await nodes.open()
    assert again.checkpoint_state().problems
    assert not holds(again)  # it appends nothing, and keeps no other node from it
    assert not (await again.verify()).ok
    assert not CheckpointLog(nodes.log).exists()  # never starts a new log on its own


def test_checkpoints_name_the_schema_on_sqlites_scale() -> None:
    """A log moved from SQLite goes on with the same schema numbers: each backend adds its
    migration for each schema change (if this fails, one was added to only one backend)."""
    from chatd.store.postgres import migrations as postgres
    from chatd.store.postgres.chain_reads import SQLITE_SCALE
    from chatd.store.sqlite import migrations as sqlite

    assert postgres.LATEST_VERSION + SQLITE_SCALE == sqlite.LATEST_VERSION


async def test_a_checkpoint_interval_during_a_database_outage_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL restarting is an outage the next interval recovers from, as the head poll
    and the revocation sweep say with a warning; it was an ERROR with a traceback (found by
    the cluster chaos run, ``tests/chaos/test_chaos_cluster.py``)."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 1:
            raise DatabaseUnavailable()
        raise asyncio.CancelledError  # the store closes: the loop ends

    history = SimpleNamespace(_interval=0, _tick=tick)
    caplog.set_level(logging.WARNING, logger="chatd.store")
    with pytest.raises(asyncio.CancelledError):
        await PostgresHistory._every_interval(history)  # type: ignore[arg-type]
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [("WARNING", "checkpoint skipped: the database is unavailable; next interval")]
