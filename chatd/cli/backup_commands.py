"""``chatd backup DIR`` and ``chatd restore DIR``, on either backend.

A backup holds what a restore needs, except the key file, which is kept apart on purpose (a
stolen backup must open nothing; ``manifest.json`` names the key ids it needs):

* ``chatd.checkpoints``: the signed checkpoint log, copied **first**, under its flock (whole
  lines only).  The database copy is taken after, so it extends the log's last record and
  ``chatd verify`` passes on the restored copy;
* the database: ``chatd.sqlite3`` (SQLite's online backup API) or ``database.pgdump``
  (``pg_dump``, custom format), each one snapshot taken while the server runs;
* ``attachments/``: the files, copied **after** the database, so that every attachment row
  of the copy finds its file (a file written later is only an orphan the sweep removes);
* ``manifest.json``: the format, the backend, when, and the key ids.

``chatd restore DIR`` puts them back into an empty place only (no database, no checkpoint
log, no attachment files there), then declares a **new epoch**: the clients that knew the
history beyond the backup see a restored database, not a silent rewind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from chatd.cli.common import _, out
from chatd.config import Settings
from chatd.core.errors import BackupError
from chatd.crypto.keyring import load_key_file
from chatd.i18n import N_
from chatd.services.maintenance import Maintenance, os_operator
from chatd.store.checkpoint_log import CheckpointLog
from chatd.wiring import open_store

FORMAT = 1
MANIFEST = "manifest.json"
LOG = "chatd.checkpoints"
ATTACHMENTS = "attachments"
DATABASE = {"sqlite": "chatd.sqlite3", "postgres": "database.pgdump"}

NOT_EMPTY = N_("{path} is not empty: a backup goes into a new directory")
NOT_A_BACKUP = N_("{path} is not a complete chatd backup: {missing} is missing")
OTHER_BACKEND = N_(
    "this backup is of a {found} database and the settings name a {wanted} one;"
    " to move between backends, use chatd migrate-to"
)
IN_THE_WAY = N_(
    "{path} already exists: a restore only goes into an empty place; move it away first"
)


async def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    target: Path = args.directory
    ring = load_key_file(settings.store.key_file_path)  # refuse early, and name its keys
    await asyncio.to_thread(_new_directory, target)
    backend = settings.store.backend
    await asyncio.to_thread(_copy_log, settings.store.checkpoint_log_path, target / LOG)
    dsn = settings.store.postgres_dsn
    if dsn is not None:
        from chatd.store.postgres.backup import dump

        await dump(dsn, target / DATABASE[backend])
    else:
        from chatd.store.sqlite.backup import online_backup

        await online_backup(settings.store.database_path, target / DATABASE[backend])
    files = await asyncio.to_thread(
        _copy_tree, settings.store.attachments_dir, target / ATTACHMENTS
    )
    manifest = {
        "format": FORMAT,
        "backend": backend,
        "taken_at_ms": int(time.time() * 1000),
        "key_ids": sorted(ring.keys),
        "attachment_files": files,
    }
    await asyncio.to_thread(_write, target / MANIFEST, json.dumps(manifest, indent=2).encode())
    out(
        args,
        _(
            "Backup written to {path} ({files} attachment files). Keep the key file apart:"
            " it is not in the backup.",
            path=str(target),
            files=files,
        ),
        manifest,
    )
    return 0


async def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    source: Path = args.directory
    manifest = await asyncio.to_thread(_manifest, source)
    backend = settings.store.backend
    if manifest.get("backend") != backend:
        raise BackupError(OTHER_BACKEND, found=str(manifest.get("backend")), wanted=backend)
    load_key_file(settings.store.key_file_path)  # the key file must be back first
    log_path = settings.store.checkpoint_log_path
    attachments = settings.store.attachments_dir
    dsn = settings.store.postgres_dsn
    database = settings.store.database_path
    in_the_way = [log_path, attachments]
    if dsn is None:
        in_the_way += [database, database.with_name(database.name + "-wal")]
    await asyncio.to_thread(_refuse_what_is_in_the_way, in_the_way)
    if dsn is not None:
        from chatd.store.postgres.backup import restore

        await _refuse_a_used_database(dsn)
        await restore(dsn, source / DATABASE[backend])
    else:
        await asyncio.to_thread(_copy_file, source / DATABASE[backend], database)
    await asyncio.to_thread(_copy_file, source / LOG, log_path)
    files = await asyncio.to_thread(_copy_tree, source / ATTACHMENTS, attachments)
    async with open_store(settings) as store:
        epoch = await Maintenance(store).declare_new_epoch(by=os_operator())
    out(
        args,
        _(
            "Restored from {path} ({files} attachment files); new store epoch {epoch}.",
            path=str(source),
            files=files,
            epoch=epoch,
        ),
        {"epoch": epoch, "attachment_files": files, "backend": backend},
    )
    return 0


# ---------------------------------------------------------------------------- files


def _new_directory(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise BackupError(NOT_EMPTY, path=str(target))
    target.mkdir(mode=0o700, parents=True, exist_ok=True)


def _refuse_what_is_in_the_way(paths: list[Path]) -> None:
    for path in paths:
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            raise BackupError(IN_THE_WAY, path=str(path))


def _copy_file(source: Path, target: Path) -> None:
    if source.exists():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(target, source.read_bytes())


def _copy_log(source: Path, target: Path) -> None:
    """The log's complete lines, read under its flock (an append in progress waits)."""
    log = CheckpointLog(source)
    if not log.exists():
        return
    fd = log.acquire()
    try:
        _lines, end = log.read_from(0)
        _write(target, os.pread(fd, end, 0))
    finally:
        log.release(fd)


def _copy_tree(source: Path, target: Path) -> int:
    """Copy the files under ``source`` (fsynced each); how many."""
    if not source.is_dir():
        return 0
    count = 0
    for path in sorted(source.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write(destination, path.read_bytes())
            count += 1
    return count


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` under a temporary name, fsync, rename: never a half file at ``path``."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def _manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError):
        raise BackupError(NOT_A_BACKUP, path=str(source), missing=MANIFEST) from None
    backend = str(manifest.get("backend"))
    if backend in DATABASE and not (source / DATABASE[backend]).is_file():
        raise BackupError(NOT_A_BACKUP, path=str(source), missing=DATABASE[backend])
    return dict(manifest)


async def _refuse_a_used_database(dsn: str) -> None:
    from chatd.store.postgres.db import connect, has_chatd_tables_txn
    from chatd.store.postgres.failures import address

    conn = await connect(dsn)
    try:
        used = await has_chatd_tables_txn(conn)
    finally:
        await conn.close()
    if used:
        raise BackupError(IN_THE_WAY, path=address(dsn))


__all__ = ["cmd_backup", "cmd_restore"]
