"""What a SQLite error says about the database file: damaged, unavailable, or neither.

SQLite reports a damaged file in several ways: ``SQLITE_CORRUPT`` (a page or the schema does
not parse: "database disk image is malformed", "malformed database schema (…)"),
``SQLITE_NOTADB`` (the header is not SQLite's), and — when the damage hits the schema table
itself — plain ``SQLITE_ERROR``s such as "no such table" for a table every migrated database
has.  :func:`classify` sorts an error into one of our errors so that no caller ever sees
``sqlite3``'s exceptions: the admin command then says ``database damaged: …`` and exits with
its documented code, the server answers ``internal_error``, and ``chatd verify`` reports it as
a problem.

Errors that are about the file's surroundings (it cannot be opened, it is read-only, the disk
is full, an I/O error, another process holds the lock) are :class:`DatabaseUnavailable`:
restoring a backup would not help there.  Constraint violations (``sqlite3.IntegrityError``)
and programming errors are neither: they are left as they are, for the code that expects them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chatd.core.errors import DatabaseDamaged, DatabaseUnavailable
from chatd.i18n import N_

# Primary result codes (the low byte of an extended code), from sqlite3.h.
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_NOMEM = 7
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14

SURROUNDING_CODES = frozenset(
    {
        SQLITE_PERM,
        SQLITE_BUSY,
        SQLITE_LOCKED,
        SQLITE_NOMEM,
        SQLITE_READONLY,
        SQLITE_IOERR,
        SQLITE_FULL,
        SQLITE_CANTOPEN,
    }
)
# Errors that are the code's own mistakes or a rule's refusal, not the file's.
NOT_ABOUT_THE_FILE = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the database file is damaged.

    Besides the codes that say so, any other error of a database that passed its migrations
    counts (a plain ``SQLITE_ERROR`` "no such table" for a table every migrated database has
    is its schema table damaged): the statements are the code's own and tested, so what
    fails is the file."""
    if isinstance(exc, NOT_ABOUT_THE_FILE) or not isinstance(exc, sqlite3.DatabaseError):
        return False
    return primary_code(exc) not in SURROUNDING_CODES


def said(exc: BaseException) -> str:
    """SQLite's words on one line (a damaged schema's message quotes its SQL, newlines and
    all; it never holds row content)."""
    return " ".join(str(exc).split())


def classify(exc: sqlite3.Error) -> DatabaseDamaged | DatabaseUnavailable | None:
    """Our error for ``exc``, or None for one that says nothing about the file."""
    if isinstance(exc, NOT_ABOUT_THE_FILE):
        return None
    if is_damage(exc):
        return DatabaseDamaged(N_("database damaged: {reason}"), reason=said(exc))
    if primary_code(exc) in SURROUNDING_CODES:
        return DatabaseUnavailable(N_("database unavailable: {reason}"), reason=said(exc))
    return None


@asynccontextmanager
async def translating() -> AsyncIterator[None]:
    """Raise our error in place of a SQLite error about the file (see :func:`classify`)."""
    try:
        yield
    except sqlite3.Error as exc:
        ours = classify(exc)
        if ours is None:
            raise
        raise ours from exc
    except UnicodeDecodeError as exc:
        # chatd writes only UTF-8: text that does not decode is damage.  A flipped byte in
        # the schema even breaks SQLite's own error message ("malformed database schema
        # (…)" quotes the damaged SQL), which Python then fails to decode.
        raise DatabaseDamaged(N_("database damaged: {reason}"), reason=said(exc)) from exc
