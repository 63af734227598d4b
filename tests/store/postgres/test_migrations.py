"""PostgreSQL's migrations: the whole of SQLite's schema, once, safely from several nodes,
refusing a newer database; and the application role's privileges, exactly.
"""

from __future__ import annotations

import asyncio

import aiosqlite
import asyncpg
import pytest

from chatd.core.errors import DatabaseDamaged, MigrationError
from chatd.store.postgres import db, migrations, privileges
from chatd.store.sqlite.db import migrate as sqlite_migrate
from tests.store.postgres.conftest import Migrated

# What PostgreSQL has beyond SQLite's triggers: TRUNCATE fires no row trigger, and the
# checkpoint feed.
POSTGRES_ONLY_TRIGGERS = {
    "events_append_only_truncate",
    "data_keys_no_truncate",
    "memberships_no_truncate",
    "attachments_keep_sent_truncate",
    "store_epoch_no_truncate",
    "admin_audit_no_truncate",
    "conversations_head_version",
}
# A SQLite declared type → the PostgreSQL types it may become.
TYPES = {"INTEGER": {"bigint", "boolean", "integer"}, "BLOB": {"bytea"}, "TEXT": {"text"}}
BOOLEANS = {("users", "disabled"), ("users", "must_change_password")}

Columns = dict[str, list[tuple[str, str, bool]]]  # table → [(column, type, not null)]


async def sqlite_reference() -> tuple[Columns, set[str], set[str]]:
    """SQLite's schema after its migrations: columns per table, index and trigger names."""
    conn = await aiosqlite.connect(":memory:", isolation_level=None)
    try:
        await sqlite_migrate(conn)
        master = list(await conn.execute_fetchall("SELECT type, name FROM sqlite_master"))
        tables: Columns = {}
        for kind, name in master:
            if kind == "table":
                info = await conn.execute_fetchall(f"PRAGMA table_info({name})")
                tables[name] = [(r[1], r[2].split()[0].upper(), bool(r[3] or r[5])) for r in info]
        indexes = {n for k, n in master if k == "index" and not n.startswith("sqlite_")}
        triggers = {n for k, n in master if k == "trigger"}
        return tables, indexes, triggers
    finally:
        await conn.close()


async def postgres_schema(conn: db.Connection) -> tuple[Columns, set[str], set[str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable = 'NO' AS not_null"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " ORDER BY table_name, ordinal_position"
    )
    tables: Columns = {}
    for r in rows:
        tables.setdefault(r["table_name"], []).append(
            (r["column_name"], r["data_type"], r["not_null"])
        )
    indexes = {
        r["indexname"]
        for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }
    triggers = {
        r["tgname"]
        for r in await conn.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    }
    return tables, indexes, triggers


async def test_migrate_creates_sqlite_s_whole_schema_then_does_nothing(postgres_dsn: str) -> None:
    conn = await db.connect(postgres_dsn)
    try:
        assert await migrations.migrate(conn) == migrations.LATEST_VERSION == 2
        tables, indexes, triggers = await postgres_schema(conn)
        want_tables, want_indexes, want_triggers = await sqlite_reference()

        assert set(tables) == set(want_tables)
        for table, columns in want_tables.items():
            have = tables[table]
            if table == "conversations":
                assert have[-1] == ("head_version", "bigint", True)
                have = have[:-1]
            assert [c[0] for c in have] == [c[0] for c in columns], table  # SQLite's order
            for (name, pg_type, pg_not_null), (_, lite_type, lite_not_null) in zip(
                have, columns, strict=True
            ):
                assert pg_type in TYPES[lite_type], (table, name)
                assert (pg_type == "boolean") == ((table, name) in BOOLEANS)
                assert pg_not_null == lite_not_null, (table, name)
        assert want_indexes <= indexes
        assert triggers == want_triggers | POSTGRES_ONLY_TRIGGERS

        epoch = await conn.fetchval("SELECT epoch FROM store_epoch")
        assert len(epoch) == 32 and int(epoch, 16) >= 0
        applied = await conn.fetch("SELECT version FROM schema_migrations")

        assert await migrations.migrate(conn) == 2  # a second run changes nothing
        assert await postgres_schema(conn) == (tables, indexes, triggers)
        assert await conn.fetch("SELECT version FROM schema_migrations") == applied
        assert await conn.fetchval("SELECT epoch FROM store_epoch") == epoch
    finally:
        await conn.close()


async def test_concurrent_migrates_end_with_one_schema_and_no_error(postgres_dsn: str) -> None:
    """Three nodes migrate at the same instant, two of them granting the same role: the
    advisory lock makes them take turns; each ends at the latest version and none fails."""
    role = "chatd_app_" + postgres_dsn.rsplit("/", 1)[-1]
    setup = await db.connect(postgres_dsn)
    await setup.execute(f"CREATE ROLE {role} LOGIN")
    conns = [await db.connect(postgres_dsn) for _ in range(3)]
    try:
        start = asyncio.Event()

        async def node(conn: db.Connection, grant: str | None) -> int:
            await start.wait()
            return await migrations.migrate(conn, app_role=grant)

        tasks = [
            asyncio.create_task(node(c, g)) for c, g in zip(conns, [role, role, None], strict=True)
        ]
        await asyncio.sleep(0)
        start.set()
        latest = migrations.LATEST_VERSION
        assert await asyncio.gather(*tasks) == [latest] * 3
        assert [
            r["version"]
            for r in await setup.fetch("SELECT version FROM schema_migrations ORDER BY version")
        ] == list(range(1, latest + 1))
        assert await setup.fetchval("SELECT COUNT(*) FROM store_epoch") == 1
        _, _, triggers = await postgres_schema(setup)
        assert "events_append_only_update" in triggers
        assert await setup.fetchval("SELECT has_table_privilege($1, 'events', 'INSERT')", role)
    finally:
        for conn in conns:
            await conn.close()
        await setup.execute(f"DROP OWNED BY {role}")
        await setup.execute(f"DROP ROLE {role}")
        await setup.close()


async def test_a_newer_database_is_refused_with_the_sentence(postgres_dsn: str) -> None:
    conn = await db.connect(postgres_dsn)
    try:
        await migrations.migrate(conn)
        await conn.execute("INSERT INTO schema_migrations VALUES (7, 'from a later chatd', 0)")
        with pytest.raises(MigrationError) as refused:
            await migrations.migrate(conn)
        assert refused.value.message == (
            "The database is at schema version 7, newer than this chatd (2); upgrade chatd."
        )
        assert "version 7" in refused.value.message_in("fr")
    finally:
        await conn.close()


async def test_chatd_tables_without_their_record_are_damage(postgres_dsn: str) -> None:
    """Not a new database: migration 1 must not run over tables someone left behind."""
    conn = await db.connect(postgres_dsn)
    try:
        await migrations.migrate(conn)
        await conn.execute("DELETE FROM schema_migrations")
        with pytest.raises(DatabaseDamaged, match="chatd tables without their migrations"):
            await migrations.migrate(conn)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(postgres_dsn: str) -> None:
    """Each migration is one transaction with its record: a failure keeps neither."""
    conn = await db.connect(postgres_dsn)
    try:
        await conn.execute("CREATE SEQUENCE head_versions")  # in migration 1's way
        with pytest.raises(MigrationError, match="Migration 1 failed"):
            await migrations.migrate(conn)
        assert await conn.fetchval("SELECT to_regclass('events')") is None
        assert await db.schema_version_txn(conn) == 0
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- privileges

KINDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


async def test_the_application_role_has_exactly_the_privileges_listed(migrated: Migrated) -> None:
    conn = await db.connect(migrated.owner_dsn)
    role = migrated.app_role
    try:
        grants = {g.table: g for g in privileges.GRANTS}
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables == set(grants)  # a new table needs a decision here
        for table, grant in grants.items():
            allowed = {"SELECT": grant.select, "INSERT": grant.insert, "DELETE": grant.delete}
            for kind in KINDS:
                have = await conn.fetchval(
                    "SELECT has_table_privilege($1, $2, $3)", role, table, kind
                )
                assert have == allowed.get(kind, False), (table, kind)
            for column in await conn.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = $1",
                table,
            ):
                name = column["column_name"]
                have = await conn.fetchval(
                    "SELECT has_column_privilege($1, $2, $3, 'UPDATE')", role, table, name
                )
                assert have == (name in grant.update), (table, name)
        for table in ("events", "admin_audit"):
            assert grants[table].update == () and not grants[table].delete
        sequences = {
            r["relname"]
            for r in await conn.fetch("SELECT relname FROM pg_class WHERE relkind = 'S'")
        }
        assert sequences == set(privileges.SEQUENCES)
        for sequence in sequences:
            assert await conn.fetchval(
                "SELECT has_sequence_privilege($1, $2, 'USAGE')", role, sequence
            )
            assert not await conn.fetchval(
                "SELECT has_sequence_privilege($1, $2, 'UPDATE')", role, sequence
            )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE events DISABLE TRIGGER events_append_only_update",
        "DROP TRIGGER events_append_only_delete ON events",
        "ALTER TABLE admin_audit DISABLE TRIGGER ALL",
        "DROP FUNCTION chatd_refuse() CASCADE",
        "CREATE TABLE public.scratch (id int)",
        "SELECT setval('head_versions', 1)",
        "SET session_replication_role = replica",
    ],
)
async def test_the_application_role_cannot_disarm_the_rules(migrated: Migrated, sql: str) -> None:
    conn = await db.connect(migrated.app_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql)
    finally:
        await conn.close()


async def test_a_grant_revokes_what_was_added_by_hand(migrated: Migrated) -> None:
    conn = await db.connect(migrated.owner_dsn)
    role = migrated.app_role
    try:
        await conn.execute(f"GRANT UPDATE, DELETE ON events TO {role}")
        assert await conn.fetchval("SELECT has_table_privilege($1, 'events', 'DELETE')", role)
        await migrations.migrate(conn, app_role=role)
        assert not await conn.fetchval("SELECT has_table_privilege($1, 'events', 'DELETE')", role)
        assert not await conn.fetchval("SELECT has_table_privilege($1, 'events', 'UPDATE')", role)
    finally:
        await conn.close()


async def test_the_owner_or_a_superuser_is_no_application_role(migrated: Migrated) -> None:
    conn = await db.connect(migrated.owner_dsn)
    try:
        with pytest.raises(MigrationError, match="cannot be the application role"):
            await migrations.migrate(conn, app_role="postgres")
    finally:
        await conn.close()


async def test_ensure_role_creates_a_login_role_once(postgres_dsn: str) -> None:
    conn = await db.connect(postgres_dsn)
    role = "chatd_app_" + postgres_dsn.rsplit("/", 1)[-1]
    try:
        async with db.transaction(conn, "ensure_role") as txn:
            assert await privileges.ensure_role_txn(txn, role)
            assert not await privileges.ensure_role_txn(txn, role)
        assert await conn.fetchval(
            "SELECT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole FROM pg_roles"
            " WHERE rolname = $1",
            role,
        )
    finally:
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.close()
