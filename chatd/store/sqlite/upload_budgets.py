"""The upload quota's buckets on SQLite: read, decided and written back in one write transaction.

:meth:`SqliteUploadBudgets.admit_upload` reads the user's row, asks
:func:`chatd.core.upload_quota.admit` and writes the row back, all inside one ``BEGIN
IMMEDIATE`` transaction of the single writer: two uploads cannot both spend the last tokens.
Several processes on one database serialise on SQLite's write lock the same way, so the quota
holds across nodes that share it.  Settling is the same read-rule-write step.

A row whose buckets are full again is what no row means, so it is deleted: the user's own
when a settlement fills it, and every row past its ``full_at`` when an upload is admitted
(an index range, usually empty).
"""

from __future__ import annotations

import aiosqlite

from chatd.core.upload_quota import (
    BudgetState,
    Refusal,
    Reservation,
    UploadLimits,
    admit,
    full_again_at,
    settle,
)
from chatd.store.sqlite.context import SqliteContext


async def budget_txn(conn: aiosqlite.Connection, user_id: int) -> BudgetState | None:
    rows = list(
        await conn.execute_fetchall(
            "SELECT upload_tokens, byte_tokens, updated_at FROM upload_budgets WHERE user_id = ?",
            (user_id,),
        )
    )
    if not rows:
        return None
    uploads, volume, updated_at = rows[0]
    return BudgetState(int(uploads), int(volume), int(updated_at))


async def write_budget_txn(
    conn: aiosqlite.Connection, user_id: int, state: BudgetState, limits: UploadLimits
) -> None:
    """Keep ``state`` for ``user_id``, or forget the row if it is full at its own time."""
    full_at = full_again_at(state, limits)
    if full_at <= state.updated_at:
        await conn.execute("DELETE FROM upload_budgets WHERE user_id = ?", (user_id,))
        return
    await conn.execute(
        "INSERT INTO upload_budgets (user_id, upload_tokens, byte_tokens, updated_at, full_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " upload_tokens = excluded.upload_tokens, byte_tokens = excluded.byte_tokens,"
        " updated_at = excluded.updated_at, full_at = excluded.full_at",
        (user_id, state.uploads, state.volume, state.updated_at, full_at),
    )


async def admit_txn(
    conn: aiosqlite.Connection,
    user_id: int,
    declared_bytes: int | None,
    limits: UploadLimits,
    now_ms: int,
) -> Reservation | Refusal:
    answer = admit(await budget_txn(conn, user_id), limits, declared_bytes, now_ms)
    if isinstance(answer, Refusal):
        return answer
    state, reserved = answer
    await write_budget_txn(conn, user_id, state, limits)
    await conn.execute("DELETE FROM upload_budgets WHERE full_at <= ?", (now_ms,))
    return Reservation(user_id, reserved, limits)


async def settle_txn(
    conn: aiosqlite.Connection, reservation: Reservation, received_bytes: int, now_ms: int
) -> None:
    user_id = reservation.user_id
    state = settle(await budget_txn(conn, user_id), reservation, received_bytes, now_ms)
    await write_budget_txn(conn, user_id, state, reservation.limits)


class SqliteUploadBudgets:
    """:class:`~chatd.store.contract.UploadBudgets` on SQLite.  The buckets are not what the
    writer's conversation cache holds: every job keeps the cache."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx

    async def admit_upload(
        self, user_id: int, declared_bytes: int | None, limits: UploadLimits, now_ms: int
    ) -> Reservation:
        async def run(conn: aiosqlite.Connection) -> Reservation | Refusal:
            return await admit_txn(conn, user_id, declared_bytes, limits, now_ms)

        answer = await self._ctx.write("admit_upload", run, keeps_conversation_cache=True)
        if isinstance(answer, Refusal):
            raise answer.error()
        return answer

    async def settle_upload(
        self, reservation: Reservation, received_bytes: int, now_ms: int
    ) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await settle_txn(conn, reservation, received_bytes, now_ms)

        await self._ctx.write("settle_upload", run, keeps_conversation_cache=True)
