"""The schema check of ``chatd verify`` on PostgreSQL: the catalogue against the reference.

The owner role can disarm the append-only defences without touching a row: disable a
trigger, replace its function, add a rule that rewrites a statement.  Each is named.
"""

from __future__ import annotations

import asyncpg
import pytest

from chatd.store.postgres import db
from chatd.store.postgres.migrations import migrate
from chatd.store.postgres.schema_check import check_schema_txn, describe_txn
from chatd.store.postgres.schema_reference import REFERENCE
from tests.store.postgres.conftest import Migrated


async def problems_of(dsn: str) -> list[str]:
    conn = await db.connect(dsn)
    try:
        async with db.transaction(conn, "verify", readonly=True, isolation="repeatable_read"):
            return [str(p.reason) for p in await check_schema_txn(conn)]
    finally:
        await conn.close()


async def test_the_reference_is_what_the_migrations_make(migrated: Migrated) -> None:
    """If this fails after a new migration, print the reference again:
    ``python -m chatd.store.postgres.schema_check DSN`` on a new, migrated database."""
    conn = await db.connect(migrated.app_dsn)  # verify runs as the application role
    try:
        async with db.transaction(conn, "describe", readonly=True):
            described = await describe_txn(conn)
    finally:
        await conn.close()
    assert described == REFERENCE
    assert await problems_of(migrated.app_dsn) == []


async def test_an_extension_in_public_is_not_a_problem(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await migrate(conn)
        await conn.execute("CREATE EXTENSION pg_stat_statements SCHEMA public")
    finally:
        await conn.close()
    assert await problems_of(postgres_dsn) == []


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        ("ALTER TABLE events DISABLE TRIGGER events_append_only_update", "trigger events."),
        ("DROP TRIGGER admin_audit_no_delete ON admin_audit", "is missing"),
        (
            "CREATE OR REPLACE FUNCTION chatd_refuse() RETURNS trigger LANGUAGE plpgsql"
            " SET search_path = pg_catalog, public, pg_temp AS $$ BEGIN RETURN NULL; END $$",
            "function chatd_refuse()",
        ),
        (
            "CREATE RULE events_keep AS ON INSERT TO events DO INSTEAD NOTHING",
            "rule events.events_keep",
        ),
        ("ALTER TABLE users ALTER COLUMN login DROP NOT NULL", "column users.login"),
        ("ALTER TABLE events DROP CONSTRAINT events_seq_check", "is missing"),
        ("CREATE INDEX spare ON users (login)", "was not created"),
    ],
)
async def test_a_disarmed_defence_is_named(postgres_dsn: str, statement: str, says: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await migrate(conn)
        await conn.execute(statement)
    finally:
        await conn.close()
    found = await problems_of(postgres_dsn)
    assert found and any(says in p for p in found), found


@pytest.mark.parametrize(
    ("grant", "says"),
    [
        ("GRANT UPDATE ON events TO {role}", "UPDATE on events to"),
        ("GRANT DELETE ON admin_audit TO {role}", "DELETE on admin_audit to"),
        ("GRANT UPDATE (user_id) ON auth_tokens TO {role}", "UPDATE on auth_tokens.user_id"),
        ("GRANT TRUNCATE ON memberships TO PUBLIC", "TRUNCATE on memberships to PUBLIC"),
        ("GRANT UPDATE ON SEQUENCE head_versions TO {role}", "UPDATE on head_versions"),
    ],
)
async def test_a_privilege_beyond_the_grants_is_named(
    migrated: Migrated, grant: str, says: str
) -> None:
    """The second defence: only the owner may change the log; a GRANT changes no object."""
    assert await problems_of(migrated.app_dsn) == []
    conn = await asyncpg.connect(migrated.owner_dsn)
    try:
        await conn.execute(grant.format(role=migrated.app_role))
        try:
            found = await problems_of(migrated.app_dsn)
        finally:
            await migrate(conn, app_role=migrated.app_role)  # exactly the grants again
            await conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC")
    finally:
        await conn.close()
    assert any(says in p for p in found), found
