"""Numbered, described schema migrations for the PostgreSQL store, and the runner.

The numbering is PostgreSQL's own and starts at 1: a fresh backend has no history, so
migration 1 (:mod:`.migration_1`) creates today's whole schema, SQLite's migrations 1-11 as
they stand, plus ``conversations.head_version``.  From there on the two backends change
together: a schema change is a migration in each, with its own number in each (migration 2
is SQLite's 12: the upload quota's ``upload_budgets``).

How they run (:func:`migrate`), with the **owner role's** URL (the role that will own every
table, function and sequence; the application role only gets privileges, :mod:`.privileges`):

* Each migration runs in its own transaction together with its ``schema_migrations`` row.
* Every such transaction first takes ``pg_advisory_xact_lock(MIGRATION_LOCK)`` and reads the
  version again under it: two nodes that migrate at the same moment take turns, and the
  second finds the work done.  The lock is the database's own (advisory locks are scoped to
  one database) and ends with the transaction, even if the node dies.
* A database whose recorded version is newer than this code is refused, before anything is
  touched; one that has chatd's tables but no record of their migrations is damaged (it is
  not a new database, and migration 1 must not run on it).
* Never edit a published migration: add the next number.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import asyncpg

from chatd.core.errors import DatabaseDamaged, MigrationError
from chatd.i18n import N_
from chatd.store.postgres import migration_1, privileges
from chatd.store.postgres.db import Connection, has_chatd_tables_txn, schema_version_txn
from chatd.store.postgres.db import transaction as named_transaction
from chatd.store.postgres.failures import classify

log = logging.getLogger("chatd.store")

# pg_advisory_xact_lock's key for migrations: the bytes "chatdmig" as a signed 64-bit int.
MIGRATION_LOCK = int.from_bytes(b"chatdmig", "big", signed=True)

SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version      INTEGER PRIMARY KEY,
    description  TEXT NOT NULL,
    applied_at   BIGINT NOT NULL            -- seconds since the Unix epoch, as on SQLite
)
"""

NEWER = N_(
    "The database is at schema version {current}, newer than this chatd ({latest}); upgrade chatd."
)
FAILED = N_("Migration {version} failed: {reason}")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the whole schema of SQLite's migrations 1-11 (append-only triggers in PL/pgSQL),"
        " ids from sequences, conversations.head_version",
        migration_1.SQL,
    ),
    Migration(
        2,
        "upload quota: each user's buckets, shared by the nodes and kept across restarts"
        " (SQLite's migration 12)",
        """
        -- One row per user whose buckets are not full (chatd.core.upload_quota.BudgetState):
        -- levels in token-milliseconds (negative: bytes owed), at updated_at (ms since the
        -- Unix epoch).  full_at: when both are full again, after which the row may go.
        CREATE TABLE upload_budgets (
            user_id       BIGINT PRIMARY KEY,
            upload_tokens BIGINT NOT NULL,
            byte_tokens   BIGINT NOT NULL,
            updated_at    BIGINT NOT NULL,
            full_at       BIGINT NOT NULL CHECK (full_at >= updated_at)
        );
        CREATE INDEX upload_budgets_by_full ON upload_budgets (full_at);
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


async def _locked_version_txn(conn: Connection) -> int:
    """Under the migration lock: the recorded version, refusing what cannot be migrated."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await conn.execute(SCHEMA_MIGRATIONS)
    current = await schema_version_txn(conn)
    if current == 0 and await has_chatd_tables_txn(conn):
        raise DatabaseDamaged(
            N_("database damaged: {reason}"), reason="chatd tables without their migrations"
        )
    if current > LATEST_VERSION:
        raise MigrationError(NEWER, current=current, latest=LATEST_VERSION)
    return current


async def _apply_next(conn: Connection) -> tuple[int, bool]:
    """Apply the next pending migration, if any, in its own transaction: the version the
    database is at afterwards (read under the lock: another node may have done the work),
    and whether this call applied one."""
    async with named_transaction(conn, "migration") as txn:
        current = await _locked_version_txn(txn)
        pending = [m for m in MIGRATIONS if m.version > current]
        if not pending:
            return current, False
        migration = pending[0]
        try:
            await txn.execute(migration.sql)  # the simple protocol: several statements
        except asyncpg.PostgresError as exc:
            ours = classify(exc)
            if ours is not None:  # the database went away: say so, not "migration failed"
                raise ours from exc
            raise MigrationError(
                FAILED, version=migration.version, reason=" ".join(str(exc).split())
            ) from exc
        await txn.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
            migration.version,
            migration.description,
            int(time.time()),
        )
    log.info("applied migration %d: %s", migration.version, migration.description)
    return migration.version, True


async def migrate(conn: Connection, *, app_role: str | None = None) -> int:
    """Apply the pending migrations, one transaction each; return the schema's version.

    Run as the owner role.  ``app_role``: give that (existing) role exactly the privileges
    the store needs (:func:`.privileges.grant_txn`), in one more transaction under the lock,
    after the migrations (so that the tables a migration adds are covered too)."""
    current, applied = await _apply_next(conn)
    while applied:
        current, applied = await _apply_next(conn)
    if app_role is not None:
        async with named_transaction(conn, "grant_application_role") as txn:
            await _locked_version_txn(txn)
            await privileges.grant_txn(txn, app_role)
    return current
