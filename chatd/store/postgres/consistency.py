"""The clear columns that repeat what the log says, or must agree with other rows, on
PostgreSQL: the reads of ``chatd verify``'s consistency checks.

The rules themselves (:class:`OperationCheck`, :class:`LogFacts`,
:func:`conversation_problem`) are plain code on values already read, shared with SQLite
(:mod:`chatd.store.sqlite.consistency`, whose docstring says why each column matters); only
the reads differ.  A value of a type chatd never writes is a mismatch, never an exception
(PostgreSQL's typed columns make that rarer than on SQLite, not impossible: a BOOLEAN where
an integer is expected).
"""

from __future__ import annotations

from typing import Any

from chatd.core.records import VerifyProblem
from chatd.i18n import N_, Text
from chatd.store.data_keys import AUDIT_SCOPE, CONV_SCOPE
from chatd.store.log_consistency import (
    IdemRow,
    KeyRow,
    LogFacts,
    OperationCheck,
    conversation_problem,
)
from chatd.store.postgres.db import Connection

# A conversation's operation rows in seq order, a page at a time.  Keyset pages on the whole
# primary key rather than a cursor: verify walks every conversation in one transaction, and
# a cursor per conversation would stay open (a portal in the server) until it ends.
_COLUMNS = "scope_conv, sender, conv_id, first_seq, last_seq, client_msg_id"
_ORDER = "first_seq, last_seq, sender, client_msg_id"
FIRST_PAGE = (
    f"SELECT {_COLUMNS} FROM idempotency_keys WHERE scope_conv = $1 ORDER BY {_ORDER} LIMIT $2"
)
NEXT_PAGE = (
    f"SELECT {_COLUMNS} FROM idempotency_keys WHERE scope_conv = $1"
    f" AND ({_ORDER}) > ($2, $3, $4, $5) ORDER BY {_ORDER} LIMIT $6"
)


class OperationRows:
    """The operation rows of one conversation, ``first_seq`` order, :meth:`fetch` by page
    (what :class:`OperationCheck` is fed)."""

    def __init__(self, conn: Connection, conv_id: int) -> None:
        self._conn = conn
        self._conv_id = conv_id
        self._after: tuple[Any, ...] | None = None

    async def fetch(self, limit: int) -> list[IdemRow]:
        if self._after is None:
            rows = await self._conn.fetch(FIRST_PAGE, self._conv_id, limit)
        else:
            rows = await self._conn.fetch(NEXT_PAGE, self._conv_id, *self._after, limit)
        if rows:
            last = rows[-1]
            self._after = (last["first_seq"], last["last_seq"], last["sender"], last[5])
        return [tuple(row)[:5] for row in rows]


async def conv_keys_txn(conn: Connection, conv_id: int) -> list[KeyRow]:
    return [
        tuple(row)
        for row in await conn.fetch(
            "SELECT version, created_at, destroyed_at FROM data_keys"
            " WHERE scope = $1 AND scope_id = $2 ORDER BY version",
            CONV_SCOPE,
            conv_id,
        )
    ]


async def creations_txn(conn: Connection) -> dict[object, list[IdemRow]]:
    """The creation rows (``scope_conv`` 0) of every conversation, by ``conv_id``."""
    found: dict[object, list[IdemRow]] = {}
    for row in await conn.fetch(
        "SELECT scope_conv, sender, conv_id, first_seq, last_seq FROM idempotency_keys"
        " WHERE scope_conv = 0 ORDER BY conv_id, first_seq"
    ):
        found.setdefault(row["conv_id"], []).append(tuple(row))
    return found


async def audit_key_problem_txn(conn: Connection) -> VerifyProblem | None:
    """The audit log's data key is made with its first record, at the same time."""
    row = await conn.fetchrow(
        "SELECT k.created_at, a.at FROM data_keys k LEFT JOIN admin_audit a ON a.seq = 1"
        " WHERE k.scope = $1 AND k.scope_id = 0 AND k.version = 1",
        AUDIT_SCOPE,
    )
    if row is not None and row[0] != row[1]:
        text = N_("the admin audit log's data key was not made with its first record")
        return VerifyProblem(0, 0, Text(text))
    return None


__all__ = [
    "IdemRow",
    "KeyRow",
    "LogFacts",
    "OperationCheck",
    "OperationRows",
    "audit_key_problem_txn",
    "conv_keys_txn",
    "conversation_problem",
    "creations_txn",
]
