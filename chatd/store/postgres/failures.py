"""What a PostgreSQL or asyncpg error says about the database: damaged, unavailable, or neither.

The PostgreSQL counterpart of :mod:`chatd.store.sqlite.damage`: no caller above the store
sees asyncpg's exceptions for a database it cannot use.  PostgreSQL classifies its errors by
SQLSTATE class, and so does :func:`classify`:

* **Unavailable** (:class:`DatabaseUnavailable`): nothing answers at the address (refused,
  unreachable, timed out: ``OSError``/``TimeoutError`` from the socket), the connection was
  lost (class 08), the server is shutting down or starting (57, but not 57014, a cancelled
  statement), out of resources (53: disk full, too many connections), an I/O error (58), the
  login refused (28) or the database does not exist (3D).  Restoring a backup would not help
  there: the server, the network or the settings must be fixed.
  So is a connection whose protocol asyncpg finds in a state it cannot go on from
  (``InternalClientError`` "cannot switch to state …": *failed*, or still inside an
  operation the server ended, e.g. with 57P01 at a fast shutdown, before the socket's close
  was seen): the pool may still hand it out, or try to reset it when it is released (and
  then terminates it).  chatd never runs two operations on one connection, and asyncpg
  refuses that before its protocol with an ``InterfaceError``, so this is the connection.
* **Damaged** (:class:`DatabaseDamaged`): PostgreSQL found its own data corrupt (XX001
  ``data_corrupted``, XX002 ``index_corrupted``).
* **Neither**: a rule's refusal (class 23, the append-only triggers among them), a
  serialization failure or deadlock (40, which the caller retries), the code's own mistakes
  (42): left as they are for the code that expects them.

The reasons are PostgreSQL's words (English, one line), or the address (host, port and
database; never the user's password, which a URL may hold).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import asyncpg

from chatd.core.errors import DatabaseDamaged, DatabaseUnavailable
from chatd.i18n import N_

UNAVAILABLE_CLASSES = frozenset({"08", "28", "3D", "53", "57", "58"})
NOT_UNAVAILABLE = frozenset({"57014"})  # query_canceled: a statement timeout, the caller's
DAMAGE_STATES = frozenset({"XX001", "XX002"})
BROKEN_PROTOCOL = "cannot switch to state"  # asyncpg's words for a connection it cannot use

NO_SERVER = N_("database unavailable: no PostgreSQL server answers at {address}")
UNAVAILABLE = N_("database unavailable: {reason}")
DAMAGED = N_("database damaged: {reason}")


def address(dsn: str) -> str:
    """``host:port/database`` of a ``postgresql://`` URL, without user or password (for a
    sentence or a log line).  A unix socket's directory stands for the host."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    try:
        port = parts.port or int((query.get("port") or ["5432"])[0])
    except ValueError:
        port = 5432
    database = parts.path.lstrip("/") or "?"
    return f"{host}:{port}/{database}"


def said(exc: BaseException) -> str:
    """The error's words on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def classify(
    exc: BaseException, dsn: str | None = None
) -> DatabaseDamaged | DatabaseUnavailable | None:
    """Our error for ``exc``, or None for one that says nothing about the database's state.
    ``dsn`` names the server in the sentence when nothing answers there."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(exc.sqlstate or "")
        if state in DAMAGE_STATES:
            return DatabaseDamaged(DAMAGED, reason=said(exc))
        if state[:2] in UNAVAILABLE_CLASSES and state not in NOT_UNAVAILABLE:
            return DatabaseUnavailable(UNAVAILABLE, reason=said(exc))
        return None
    if isinstance(exc, OSError | TimeoutError):  # refused, unreachable, no answer in time
        if dsn is not None:
            return DatabaseUnavailable(NO_SERVER, address=address(dsn))
        return DatabaseUnavailable(UNAVAILABLE, reason=said(exc))
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return DatabaseUnavailable(UNAVAILABLE, reason=said(exc))  # the connection went away
    if isinstance(exc, asyncpg.InternalClientError) and BROKEN_PROTOCOL in str(exc):
        return DatabaseUnavailable(UNAVAILABLE, reason=said(exc))  # the session was ended
    return None


@asynccontextmanager
async def translating(dsn: str | None = None) -> AsyncIterator[None]:
    """Raise our error in place of an asyncpg or socket error about the database."""
    try:
        yield
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
        TimeoutError,
    ) as exc:
        ours = classify(exc, dsn)
        if ours is None:
            raise
        raise ours from exc
