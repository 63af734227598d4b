"""``chatd migrate``: bring the database's schema to this version of chatd.

SQLite migrates itself when it is opened (one process owns the file).  PostgreSQL does not:
several nodes share it, so the schema changes once, by this command, run by the operator as
the database's **owner** role; the nodes connect as an application role that owns nothing
(``--grant ROLE`` gives that role exactly the privileges the store needs, after the
migrations, so the tables they add are covered).  A node finding an older schema refuses to
start and names this command.
"""

from __future__ import annotations

import argparse

from chatd.cli.common import _, out
from chatd.config import Settings
from chatd.wiring import open_store


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    dsn = settings.store.postgres_dsn
    if dsn is None:
        async with open_store(settings) as store:  # SQLite migrates as it opens
            del store
        where = str(settings.store.database_path)
        out(args, _("Database {where} is at the current schema.", where=where), {"database": where})
        return 0
    before, after = await migrate_postgres(dsn, grant=args.grant)
    from chatd.store.postgres.failures import address

    where = address(dsn)
    out(
        args,
        _(
            "Database {where}: schema at version {after} (it was at {before}).",
            where=where,
            after=after,
            before=before,
        ),
        {"database": where, "before": before, "after": after, "granted": args.grant},
    )
    return 0


async def migrate_postgres(dsn: str, *, grant: str | None = None) -> tuple[int, int]:
    """Apply the pending migrations (and the grants); the schema versions before and after."""
    from chatd.store.postgres.db import connect, schema_version_txn, transaction
    from chatd.store.postgres.failures import translating
    from chatd.store.postgres.migrations import migrate

    conn = await connect(dsn)
    try:
        async with transaction(conn, "read_schema_version", readonly=True):
            before = await schema_version_txn(conn)
        async with translating(dsn):
            after = await migrate(conn, app_role=grant)
    finally:
        await conn.close()
    return before, after
