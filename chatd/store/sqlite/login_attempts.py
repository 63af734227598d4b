"""The login throttle's attempts on SQLite: admitted and recorded in one write transaction.

:meth:`SqliteLoginAttempts.begin_login_attempt` counts the attempts of the login, of the
address and of everyone, asks :func:`chatd.core.login_throttle.exceeded`, and records the new
attempt, all inside one ``BEGIN IMMEDIATE`` transaction of the single writer: two attempts
cannot both see the last free slot.  Several processes on one database serialise on SQLite's
write lock the same way, so the budgets hold across nodes that share it.

Logins and addresses are kept as keyed hashes (:mod:`chatd.crypto.blind`) under a key derived
from the directory's data key: what was typed never reaches the file.
"""

from __future__ import annotations

import secrets
import sqlite3

import aiosqlite

from chatd.core.login_throttle import Admission, AttemptCounts, ThrottleLimits, exceeded
from chatd.crypto.blind import blind
from chatd.store.data_keys import DIRECTORY_SCOPE
from chatd.store.sqlite.context import SqliteContext

THROTTLE_KEY_LABEL = b"login-throttle"
LOGIN_DOMAIN = b"login"
ADDRESS_DOMAIN = b"address"


async def forget_old_attempts_txn(conn: aiosqlite.Connection, started_before: int) -> None:
    await conn.execute("DELETE FROM login_attempts WHERE started_at < ?", (started_before,))


async def attempt_counts_txn(
    conn: aiosqlite.Connection, login_key: bytes, address_key: bytes, since: int
) -> AttemptCounts:
    rows = list(
        await conn.execute_fetchall(
            "SELECT"
            " (SELECT COUNT(*) FROM login_attempts WHERE login_key = ? AND started_at >= ?),"
            " (SELECT COUNT(*) FROM login_attempts WHERE address_key = ? AND started_at >= ?),"
            " (SELECT COUNT(*) FROM login_attempts WHERE started_at >= ?)",
            (login_key, since, address_key, since, since),
        )
    )
    login, address, overall = rows[0]
    return AttemptCounts(int(login), int(address), int(overall))


async def begin_attempt_txn(
    conn: aiosqlite.Connection,
    login_key: bytes,
    address_key: bytes,
    limits: ThrottleLimits,
    now_ms: int,
) -> Admission:
    # An attempt counts while now - started_at < window (core.login_throttle.counts_at).
    since = now_ms - limits.window_ms + 1
    await forget_old_attempts_txn(conn, since)
    refused = exceeded(await attempt_counts_txn(conn, login_key, address_key, since), limits)
    if refused is not None:
        return Admission(None, refused)
    # A random id, never the next rowid: SQLite gives a deleted row's id to the next insert,
    # and an attempt forgotten with its window (a password check slower than the window)
    # would then end someone else's attempt (found by the hypothesis comparison with the
    # reference).  63 random bits: a collision is retried, and never seen in practice.
    while True:
        attempt_id = secrets.randbits(63) or 1
        try:
            await conn.execute(
                "INSERT INTO login_attempts (id, login_key, address_key, started_at)"
                " VALUES (?, ?, ?, ?)",
                (attempt_id, login_key, address_key, now_ms),
            )
        except sqlite3.IntegrityError:
            continue
        return Admission(attempt_id)


async def end_attempt_txn(
    conn: aiosqlite.Connection, attempt_id: int, succeeded: bool, now_ms: int
) -> None:
    if not succeeded:
        await conn.execute(
            "UPDATE login_attempts SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
            (now_ms, attempt_id),
        )
        return
    # A success clears its login's finished failures, never those still in flight.
    await conn.execute(
        "DELETE FROM login_attempts WHERE finished_at IS NOT NULL AND login_key ="
        " (SELECT login_key FROM login_attempts WHERE id = ?)",
        (attempt_id,),
    )
    await conn.execute("DELETE FROM login_attempts WHERE id = ?", (attempt_id,))


class SqliteLoginAttempts:
    """:class:`~chatd.store.contract.LoginAttempts` on SQLite.  Attempts are not what the
    writer's conversation cache holds: every job keeps the cache."""

    def __init__(self, ctx: SqliteContext) -> None:
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

        async def run(conn: aiosqlite.Connection) -> Admission:
            return await begin_attempt_txn(conn, login_key, address_key, limits, now_ms)

        return await self._ctx.write("begin_login_attempt", run, keeps_conversation_cache=True)

    async def end_login_attempt(self, attempt_id: int, *, succeeded: bool, now_ms: int) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await end_attempt_txn(conn, attempt_id, succeeded, now_ms)

        await self._ctx.write("end_login_attempt", run, keeps_conversation_cache=True)
