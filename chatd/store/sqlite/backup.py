"""A consistent copy of a live SQLite database, with SQLite's online backup API.

The copy is one snapshot even while the server writes: the backup API copies the pages of
one read transaction (WAL lets writers go on).  It is written to a temporary name, fsynced,
then renamed, so a crash never leaves a half copy under the final name.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import closing
from pathlib import Path


def _copy(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    uri = f"file:{source}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as src, closing(sqlite3.connect(partial)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, target)


async def online_backup(source: Path, target: Path) -> None:
    """Copy the database ``source`` to ``target`` (one snapshot), in a thread."""
    await asyncio.to_thread(_copy, source, target)
