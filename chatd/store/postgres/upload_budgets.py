"""The upload quota's buckets on PostgreSQL: read, decided and written back in one transaction.

The twin of :mod:`chatd.store.sqlite.upload_budgets`.  :meth:`PostgresUploadBudgets.
admit_upload` reads the user's row, asks :func:`chatd.core.upload_quota.admit` and writes the
row back, in one transaction.

**Several nodes admit at once.**  Reading then writing is a read-then-write: two nodes
reading the same buckets at the same instant would both spend the last tokens.  On SQLite
the single writer serialises them; here each transaction first makes sure the user has a row
(``INSERT … ON CONFLICT DO NOTHING``: a full bucket, what no row means) and locks it
(``SELECT … FOR UPDATE``).  The next transaction on that user waits for the lock, then
(``READ COMMITTED``: each statement sees what committed before it) reads what the previous
one wrote.  One lock per user, not per table as the login throttle's, since no budget spans
users.  A row deleted while a transaction waited for it (its buckets were full) is not
returned; the pair is then tried again.

Rows whose buckets are full again are deleted after the admission, with ``FOR UPDATE SKIP
LOCKED``: a row another transaction holds is left for a later sweep, so a transaction waits
only for its own user's row, before it holds any other lock (no deadlock).
"""

from __future__ import annotations

from chatd.core.upload_quota import (
    BudgetState,
    Refusal,
    Reservation,
    UploadLimits,
    admit,
    full,
    full_again_at,
    settle,
)
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection

SWEEP = (
    "DELETE FROM upload_budgets WHERE user_id IN (SELECT user_id FROM upload_budgets"
    " WHERE full_at <= $1 FOR UPDATE SKIP LOCKED)"
)


async def locked_budget_txn(
    conn: Connection, user_id: int, limits: UploadLimits, now_ms: int
) -> BudgetState:
    """The user's buckets, their row locked until the transaction ends (made full if the
    user had none)."""
    fresh = full(limits, now_ms)
    while True:
        await conn.execute(
            "INSERT INTO upload_budgets (user_id, upload_tokens, byte_tokens, updated_at, full_at)"
            " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id) DO NOTHING",
            user_id,
            fresh.uploads,
            fresh.volume,
            now_ms,
        )
        row = await conn.fetchrow(
            "SELECT upload_tokens, byte_tokens, updated_at FROM upload_budgets"
            " WHERE user_id = $1 FOR UPDATE",
            user_id,
        )
        if row is not None:  # else deleted by a sweep while we waited: make it again
            return BudgetState(int(row[0]), int(row[1]), int(row[2]))


async def write_budget_txn(
    conn: Connection, user_id: int, state: BudgetState, limits: UploadLimits
) -> None:
    """Keep ``state`` in the user's (locked) row, or delete the row if it is full."""
    full_at = full_again_at(state, limits)
    if full_at <= state.updated_at:
        await conn.execute("DELETE FROM upload_budgets WHERE user_id = $1", user_id)
        return
    await conn.execute(
        "UPDATE upload_budgets SET upload_tokens = $2, byte_tokens = $3, updated_at = $4,"
        " full_at = $5 WHERE user_id = $1",
        user_id,
        state.uploads,
        state.volume,
        state.updated_at,
        full_at,
    )


async def admit_txn(
    conn: Connection,
    user_id: int,
    declared_bytes: int | None,
    limits: UploadLimits,
    now_ms: int,
) -> Reservation | Refusal:
    state = await locked_budget_txn(conn, user_id, limits, now_ms)
    answer = admit(state, limits, declared_bytes, now_ms)
    if isinstance(answer, Refusal):
        return answer
    spent, reserved = answer
    await write_budget_txn(conn, user_id, spent, limits)
    await conn.execute(SWEEP, now_ms)
    return Reservation(user_id, reserved, limits)


async def settle_txn(
    conn: Connection, reservation: Reservation, received_bytes: int, now_ms: int
) -> None:
    user_id, limits = reservation.user_id, reservation.limits
    state = await locked_budget_txn(conn, user_id, limits, now_ms)
    settled = settle(state, reservation, received_bytes, now_ms)
    await write_budget_txn(conn, user_id, settled, limits)


class PostgresUploadBudgets:
    """:class:`~chatd.store.contract.UploadBudgets` on PostgreSQL.  The buckets are not what
    the writer's conversation cache holds: every job keeps the cache."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx

    async def admit_upload(
        self, user_id: int, declared_bytes: int | None, limits: UploadLimits, now_ms: int
    ) -> Reservation:
        async def run(conn: Connection) -> Reservation | Refusal:
            return await admit_txn(conn, user_id, declared_bytes, limits, now_ms)

        answer = await self._ctx.write("admit_upload", run, keeps_conversation_cache=True)
        if isinstance(answer, Refusal):
            raise answer.error()
        return answer

    async def settle_upload(
        self, reservation: Reservation, received_bytes: int, now_ms: int
    ) -> None:
        async def run(conn: Connection) -> None:
            await settle_txn(conn, reservation, received_bytes, now_ms)

        await self._ctx.write("settle_upload", run, keeps_conversation_cache=True)
