"""The reads of ``chatd verify``'s consistency checks on SQLite; the rules they feed are
backend-neutral (:mod:`chatd.store.log_consistency`, whose docstring says what is checked
and why)."""

from __future__ import annotations

import aiosqlite

from chatd.core.records import VerifyProblem
from chatd.i18n import N_, Text
from chatd.store.data_keys import AUDIT_SCOPE, CONV_SCOPE
from chatd.store.log_consistency import IdemRow, KeyRow


async def conv_keys_txn(conn: aiosqlite.Connection, conv_id: int) -> list[KeyRow]:
    return [
        tuple(row)
        for row in await conn.execute_fetchall(
            "SELECT version, created_at, destroyed_at FROM data_keys"
            " WHERE scope = ? AND scope_id = ? ORDER BY version",
            (CONV_SCOPE, conv_id),
        )
    ]


async def creations_txn(conn: aiosqlite.Connection) -> dict[object, list[IdemRow]]:
    """The creation rows (``scope_conv`` 0) of every conversation, by ``conv_id``."""
    found: dict[object, list[IdemRow]] = {}
    for row in await conn.execute_fetchall(
        "SELECT scope_conv, sender, conv_id, first_seq, last_seq FROM idempotency_keys"
        " WHERE scope_conv = 0"
    ):
        found.setdefault(row[2], []).append(tuple(row))
    return found


OPERATIONS_QUERY = (
    "SELECT scope_conv, sender, conv_id, first_seq, last_seq FROM idempotency_keys"
    " WHERE scope_conv = ? ORDER BY first_seq, last_seq"
)


async def audit_key_problem_txn(conn: aiosqlite.Connection) -> VerifyProblem | None:
    """The audit log's data key is made with its first record, at the same time."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT k.created_at, a.at FROM data_keys k LEFT JOIN admin_audit a ON a.seq = 1"
            " WHERE k.scope = ? AND k.scope_id = 0 AND k.version = 1",
            (AUDIT_SCOPE,),
        )
    )
    if rows and rows[0][0] != rows[0][1]:
        text = N_("the admin audit log's data key was not made with its first record")
        return VerifyProblem(0, 0, Text(text))
    return None
