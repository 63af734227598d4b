"""The login throttle's attempts on PostgreSQL: admitted and recorded in one transaction.

The twin of :mod:`chatd.store.sqlite.login_attempts`.  :meth:`PostgresLoginAttempts.
begin_login_attempt` counts the attempts of the login, of the address and of everyone, asks
:func:`chatd.core.login_throttle.exceeded`, and records the new attempt, in one transaction.

**Several nodes count at once.**  Counting then inserting is a read-then-write: two nodes
counting at the same instant would both see the last free slot, and both be admitted.  On
SQLite the single writer serialises them; here every admission first takes ``LOCK TABLE
login_attempts IN EXCLUSIVE MODE`` (the application role may: it deletes attempts), which
one transaction holds at a time while reads pass.  The next admission waits for the previous
one to commit, then (``READ COMMITTED``: each statement sees what committed before it) counts
the attempt it recorded.  One lock for the whole table, not one per login, because the
overall budget counts every attempt: any two admissions must be ordered anyway, and the
transaction is a few statements long.  Ending an attempt (a conditional ``UPDATE``, or
deletes of one login's rows) takes the lock too: its deletes and an admission's
deletes of old attempts never lock rows in opposite orders (no deadlock).

Attempt ids come from the sequence ``login_attempt_ids``, which never hands out an id twice
(SQLite's rowid would, hence its random ids there): an attempt forgotten with its window
cannot be confused with a newer one.

Logins and addresses are kept as keyed hashes (:mod:`chatd.crypto.blind`) under a key derived
from the directory's data key: what was typed never reaches the database.
"""

from __future__ import annotations

from chatd.core.login_throttle import Admission, AttemptCounts, ThrottleLimits, exceeded
from chatd.crypto.blind import blind
from chatd.store.data_keys import DIRECTORY_SCOPE
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection

THROTTLE_KEY_LABEL = b"login-throttle"
LOGIN_DOMAIN = b"login"
ADDRESS_DOMAIN = b"address"
LOCK = "LOCK TABLE login_attempts IN EXCLUSIVE MODE"


async def forget_old_attempts_txn(conn: Connection, started_before: int) -> None:
    await conn.execute("DELETE FROM login_attempts WHERE started_at < $1", started_before)


async def attempt_counts_txn(
    conn: Connection, login_key: bytes, address_key: bytes, since: int
) -> AttemptCounts:
    row = await conn.fetchrow(
        "SELECT"
        " count(*) FILTER (WHERE login_key = $1),"
        " count(*) FILTER (WHERE address_key = $2),"
        " count(*)"
        " FROM login_attempts WHERE started_at >= $3",
        login_key,
        address_key,
        since,
    )
    assert row is not None
    login, address, overall = row
    return AttemptCounts(int(login), int(address), int(overall))


async def begin_attempt_txn(
    conn: Connection,
    login_key: bytes,
    address_key: bytes,
    limits: ThrottleLimits,
    now_ms: int,
) -> Admission:
    """Admit (and record) or refuse an attempt, in the caller's ``READ COMMITTED``
    transaction, which holds the admission lock until it ends."""
    await conn.execute(LOCK)
    # An attempt counts while now - started_at < window (core.login_throttle.counts_at).
    since = now_ms - limits.window_ms + 1
    await forget_old_attempts_txn(conn, since)
    refused = exceeded(await attempt_counts_txn(conn, login_key, address_key, since), limits)
    if refused is not None:
        return Admission(None, refused)
    attempt_id = await conn.fetchval(
        "INSERT INTO login_attempts (login_key, address_key, started_at)"
        " VALUES ($1, $2, $3) RETURNING id",
        login_key,
        address_key,
        now_ms,
    )
    return Admission(int(attempt_id))


async def end_attempt_txn(conn: Connection, attempt_id: int, succeeded: bool, now_ms: int) -> None:
    await conn.execute(LOCK)
    if not succeeded:
        await conn.execute(
            "UPDATE login_attempts SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL",
            now_ms,
            attempt_id,
        )
        return
    # A success clears its login's finished failures, never those still in flight.
    await conn.execute(
        "DELETE FROM login_attempts WHERE finished_at IS NOT NULL AND login_key ="
        " (SELECT login_key FROM login_attempts WHERE id = $1)",
        attempt_id,
    )
    await conn.execute("DELETE FROM login_attempts WHERE id = $1", attempt_id)


class PostgresLoginAttempts:
    """:class:`~chatd.store.contract.LoginAttempts` on PostgreSQL.  Attempts are not what the
    writer's conversation cache holds: every job keeps the cache."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx
        self._key: bytes | None = None

    def open(self, directory_version: int) -> None:
        """Derive the hashing key from the directory's data key (loaded by then)."""
        self._key = self._ctx.keys.derived_key(
            DIRECTORY_SCOPE, 0, directory_version, THROTTLE_KEY_LABEL
        )

    def _blind(self, domain: bytes, value: str) -> bytes:
        assert self._key is not None, "open() first"
        return blind(self._key, domain, value)

    async def begin_login_attempt(
        self, login: str, address: str, limits: ThrottleLimits, now_ms: int
    ) -> Admission:
        login_key = self._blind(LOGIN_DOMAIN, login)
        address_key = self._blind(ADDRESS_DOMAIN, address)

        async def run(conn: Connection) -> Admission:
            return await begin_attempt_txn(conn, login_key, address_key, limits, now_ms)

        return await self._ctx.write("begin_login_attempt", run, keeps_conversation_cache=True)

    async def end_login_attempt(self, attempt_id: int, *, succeeded: bool, now_ms: int) -> None:
        async def run(conn: Connection) -> None:
            await end_attempt_txn(conn, attempt_id, succeeded, now_ms)

        await self._ctx.write("end_login_attempt", run, keeps_conversation_cache=True)
