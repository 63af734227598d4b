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
import asyncio
import dataclasses
import shutil

from chatd.cli.common import _, out
from chatd.config import Settings
from chatd.config.parsers import InvalidValue, parse_database_url
from chatd.core.errors import BackupError, ValidationError
from chatd.crypto.keyring import load_key_file
from chatd.i18n import N_
from chatd.store.sqlite.lock import ServerLock
from chatd.wiring import open_store

ONLY_FROM_SQLITE = N_(
    "chatd migrate-to moves a SQLite database; the settings already name a PostgreSQL one"
)
ONLY_TO_POSTGRES = N_("chatd migrate-to moves the database to PostgreSQL: give a postgresql:// URL")
LOG_IN_THE_WAY = N_(
    "{path} already exists: the checkpoint log of the moved database would replace it;"
    " move it away first"
)


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


async def cmd_migrate_to(settings: Settings, args: argparse.Namespace) -> int:
    """Move this SQLite database into the empty PostgreSQL database ``args.url``."""
    try:
        url = parse_database_url(args.url)
    except InvalidValue as exc:
        raise ValidationError(exc.msgid, **{**exc.params, "variable": "URL"}) from None
    if settings.store.backend != "sqlite":
        raise BackupError(ONLY_FROM_SQLITE)
    if not url.startswith(("postgresql://", "postgres://")):
        raise BackupError(ONLY_TO_POSTGRES)
    load_key_file(settings.store.key_file_path)  # a database moved without its keys is lost
    source_log = settings.store.checkpoint_log_path
    target = dataclasses.replace(settings.store, database_url=url, database=None)
    target_log = target.checkpoint_log_path
    from chatd.store.postgres.db import connect
    from chatd.store.postgres.failures import address
    from chatd.store.postgres.importer import import_sqlite

    where = address(url)
    with ServerLock(settings.store.database_path, N_("move the database to PostgreSQL")):
        if target_log != source_log and await asyncio.to_thread(target_log.exists):
            raise BackupError(LOG_IN_THE_WAY, path=str(target_log))
        await migrate_postgres(url, grant=args.grant)
        conn = await connect(url)
        try:
            counts = await import_sqlite(conn, settings.store.database_path, where)
        finally:
            await conn.close()
        if target_log != source_log and await asyncio.to_thread(source_log.exists):
            await asyncio.to_thread(shutil.copyfile, source_log, target_log)
    out(
        args,
        _(
            "Moved {events} events of {conversations} conversations to {where}; the history,"
            " its epoch and its checkpoint log ({log}) are unchanged. Set CHATD_DATABASE_URL"
            " on every node, then run chatd verify.",
            events=counts["events"],
            conversations=counts["conversations"],
            where=where,
            log=str(target_log),
        ),
        {"database": where, "rows": counts, "checkpoint_log": str(target_log)},
    )
    return 0
