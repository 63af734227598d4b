"""Who may use the database at once: the claims of ``chatd serve`` and of the admin commands
that need the database alone, whichever the backend.

* SQLite: one server per database file, and the commands that would leave it with a stale
  view refuse while it runs — both through the ``flock`` beside the file
  (:class:`~chatd.store.sqlite.lock.ServerLock`).
* PostgreSQL: any number of nodes hold a shared advisory lock, and the same commands take
  it exclusive (:mod:`chatd.store.postgres.serving_lock`), so they refuse while any node
  runs and no node starts while one of them runs.

Either way the refusal is :class:`~chatd.core.errors.ServerRunningError` (exit code
``EXIT_BUSY``), with a sentence that says what to stop and why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chatd.config import Settings
from chatd.i18n import N_
from chatd.store.sqlite.lock import ServerLock


@asynccontextmanager
async def sole_use(settings: Settings, purpose: str) -> AsyncIterator[None]:
    """No server or node uses the database during the block.  ``purpose`` completes
    "stop it before you …" (a message id marked with ``N_``)."""
    dsn = settings.store.postgres_dsn
    if dsn is None:
        with ServerLock(settings.store.database_path, purpose):
            yield
        return
    from chatd.store.postgres.serving_lock import SoleUse  # asyncpg only where it is used

    async with SoleUse(dsn, purpose):
        yield


@asynccontextmanager
async def serving_use(settings: Settings) -> AsyncIterator[None]:
    """``chatd serve``'s claim for its whole life: alone on SQLite, shared on PostgreSQL."""
    dsn = settings.store.postgres_dsn
    if dsn is None:
        with ServerLock(settings.store.database_path, N_("start another server")):
            yield
        return
    from chatd.store.postgres.serving_lock import ServingClaim

    async with ServingClaim(dsn):
        yield
