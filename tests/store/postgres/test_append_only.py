"""PostgreSQL refuses what SQLite's triggers refuse, as the owner (the triggers) and as the
application role (its privileges first, the triggers where it has the privilege).

Each case of :data:`.tamper_cases.CASES` runs in a transaction rolled back after it, on the
module's seeded database.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from chatd.store.postgres import db
from tests.store.postgres.conftest import ALICE, LIVE, SEED, SHREDDED, Migrated, migrate_and_seed
from tests.store.postgres.tamper_cases import CASES, NEW_EVENT, OK, PRIVILEGE, Case


async def attempt(conn: db.Connection, case: Case) -> BaseException | None:
    """Run the case in a transaction that is rolled back whatever happens."""
    txn = conn.transaction()
    await txn.start()
    try:
        await conn.execute(case.sql, *case.params)
    except asyncpg.PostgresError as exc:
        return exc
    finally:
        await txn.rollback()
    return None


@pytest.mark.parametrize("role", ["owner", "app"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_the_database_refuses_what_sqlite_refuses(
    migrated: Migrated, case: Case, role: str
) -> None:
    conn = await db.connect(migrated.owner_dsn if role == "owner" else migrated.app_dsn)
    try:
        outcome = await attempt(conn, case)
    finally:
        await conn.close()
    expected = case.owner if role == "owner" else case.app
    if expected == OK:
        assert outcome is None, outcome
    elif expected == PRIVILEGE:
        assert isinstance(outcome, asyncpg.InsufficientPrivilegeError), outcome
    else:
        assert type(outcome) is asyncpg.IntegrityConstraintViolationError, outcome
        assert outcome.sqlstate == "23000"
        assert case.says in str(outcome)


async def test_the_head_feed_is_the_trigger_s_not_the_writer_s(migrated: Migrated) -> None:
    """Every insert and update of a head takes a new head_version from the sequence, whoever
    writes it and whatever value the statement sets."""
    app, owner = await db.connect(migrated.app_dsn), await db.connect(migrated.owner_dsn)
    try:
        txn = app.transaction()
        await txn.start()
        first = await app.fetchval("SELECT head_version FROM conversations WHERE id = $1", LIVE)
        new = await app.fetchrow(
            "INSERT INTO conversations (created_at, last_seq, last_hash, last_event_at, name)"
            " VALUES (1, 0, '\\x00', 1, '\\x00') RETURNING id, head_version"
        )
        moved = await app.fetchval(
            "UPDATE conversations SET last_seq = 4 WHERE id = $1 RETURNING head_version", LIVE
        )
        await txn.rollback()
        assert new is not None and new["id"] > SHREDDED  # from conversation_ids
        assert first < new["head_version"] < moved

        txn = owner.transaction()
        await txn.start()
        forced = await owner.fetchval(
            "UPDATE conversations SET head_version = 0 WHERE id = $1 RETURNING head_version", LIVE
        )
        await txn.rollback()
        assert forced > moved
    finally:
        await app.close()
        await owner.close()


async def test_an_append_waits_for_a_concurrent_shred_then_is_refused(postgres_dsn: str) -> None:
    """The trigger reads the head FOR SHARE: an append racing a shred that has not
    committed yet waits for it, then sees it (SQLite has one writer and needs no lock)."""
    await migrate_and_seed(postgres_dsn, None, SEED)
    shredder, appender = await db.connect(postgres_dsn), await db.connect(postgres_dsn)
    try:
        shred = shredder.transaction()
        await shred.start()
        await shredder.execute("UPDATE conversations SET shredded_at = 9 WHERE id = $1", LIVE)
        append = asyncio.create_task(appender.execute(NEW_EVENT, LIVE, 4, ALICE))
        pid = appender.get_server_pid()
        waiting = None
        for _ in range(3000):  # until the append is seen waiting on the head's row lock
            waiting = await shredder.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
            )
            if waiting == "Lock":
                break
            await asyncio.sleep(0.01)
        assert waiting == "Lock" and not append.done()
        await shred.commit()
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="shredded"):
            await asyncio.wait_for(append, 30)
        assert await shredder.fetchval("SELECT MAX(seq) FROM events WHERE conv_id = $1", LIVE) == 3
    finally:
        await shredder.close()
        await appender.close()
