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

from chatd.core.records import VerifyProblem
from chatd.i18n import N_, Text
from chatd.store.data_keys import AUDIT_SCOPE, CONV_SCOPE
from chatd.store.postgres.db import Connection
from chatd.store.sqlite.consistency import (
    IdemRow,
    KeyRow,
    LogFacts,
    OperationCheck,
    conversation_problem,
)

# A conversation's operation rows, streamed in seq order beside its events (a cursor).
OPERATIONS_QUERY = (
    "SELECT scope_conv, sender, conv_id, first_seq, last_seq FROM idempotency_keys"
    " WHERE scope_conv = $1 ORDER BY first_seq, last_seq"
)


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
    "OPERATIONS_QUERY",
    "IdemRow",
    "KeyRow",
    "LogFacts",
    "OperationCheck",
    "audit_key_problem_txn",
    "conv_keys_txn",
    "conversation_problem",
    "creations_txn",
]
