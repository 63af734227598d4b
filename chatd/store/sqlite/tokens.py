"""Login tokens on SQLite: recorded by digest, found, revoked, checked in bulk, purged.

Helpers ending in ``_txn`` run inside a transaction the caller opened; the password changes of
:mod:`.users` call :func:`revoke_other_tokens_txn` and :func:`revoke_user_tokens_txn` inside
their own, so that a new password and the revocations it implies commit together.

Every token row carries its MAC (:mod:`.row_macs`), set when it is recorded and when it is
revoked.  Finding a token for authentication, and checking a node's live tokens, also check
the MACs of the token's row and of its account's row: a token someone un-revoked, or whose
account someone re-enabled, opens nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from chatd.core.errors import InvalidCredentialsError, UserDisabledError
from chatd.core.records import SessionToken
from chatd.crypto.row_macs import AUTH_TOKENS, COLUMNS, USERS, RowMacs
from chatd.store.sqlite.context import SqliteContext
from chatd.store.sqlite.row_macs import columns, row_ok, update_rows_txn

_SESSION_COLUMNS = "token_hash, user_id, created_at, expires_at, revoked_at, device, last_seen_at"
_TOKEN_COLUMNS = ", ".join(f"t.{column}" for column in _SESSION_COLUMNS.split(", "))


def _token(row: Any) -> SessionToken:
    token_hash, user_id, created_at, expires_at, revoked_at, device, last_seen_at = row
    return SessionToken(
        bytes(token_hash),
        int(user_id),
        int(created_at),
        int(expires_at),
        None if revoked_at is None else int(revoked_at),
        None if device is None else str(device),
        None if last_seen_at is None else int(last_seen_at),
    )


async def insert_token_txn(conn: aiosqlite.Connection, macs: RowMacs, token: SessionToken) -> None:
    mac = macs.mac(
        AUTH_TOKENS,
        (token.token_hash, token.user_id, token.created_at, token.expires_at, token.revoked_at),
    )
    await conn.execute(
        f"INSERT INTO auth_tokens ({_SESSION_COLUMNS}, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            token.token_hash,
            token.user_id,
            token.created_at,
            token.expires_at,
            token.revoked_at,
            token.device,
            token.last_seen_at,
            mac,
        ),
    )


async def check_credentials_unchanged_txn(
    conn: aiosqlite.Connection, user_id: int, password_hash: str
) -> None:
    """The account still has the hash a login checked, and is enabled (in the write
    transaction of the insert: SQLite's single writer orders it with a password change, a
    reset or a disabling, so the new token is never left behind by their revocation)."""
    cursor = await conn.execute(
        "SELECT password_hash, disabled FROM users WHERE id = ?", (user_id,)
    )
    row = await cursor.fetchone()
    if row is None or row[0] != password_hash:
        raise InvalidCredentialsError()
    if row[1]:
        raise UserDisabledError()


async def live_tokens_txn(
    conn: aiosqlite.Connection, user_id: int, now_ms: int
) -> list[SessionToken]:
    rows = await conn.execute_fetchall(
        f"SELECT {_SESSION_COLUMNS} FROM auth_tokens"
        " WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?"
        " ORDER BY created_at, token_hash",
        (user_id, now_ms),
    )
    return [_token(row) for row in rows]


_WITH_MACS = (
    f"SELECT {_TOKEN_COLUMNS}, {columns(AUTH_TOKENS, 't')}, {columns(USERS, 'u')}"
    " FROM auth_tokens t JOIN users u ON u.id = t.user_id"
)
_TOKEN_FIELDS = len(COLUMNS[AUTH_TOKENS]) + 1  # the covered columns and the MAC


def _rows_ok(macs: RowMacs, row: Any) -> bool:
    """Both the token's row and its account's row pass their MAC checks (after the seven
    session columns: the token's covered columns and MAC, then the account's)."""
    token, user = row[7 : 7 + _TOKEN_FIELDS], row[7 + _TOKEN_FIELDS :]
    return row_ok(macs, AUTH_TOKENS, token[:-1], token[-1], f"a token of user {row[1]}") and row_ok(
        macs, USERS, user[:-1], user[-1], f"user {row[1]}"
    )


async def find_token_txn(
    conn: aiosqlite.Connection, macs: RowMacs, token_hash: bytes
) -> SessionToken | None:
    """The token of ``token_hash``, or None: also when its row or its account's row fails
    its MAC (the caller then refuses the session as it refuses an unknown token)."""
    rows = list(await conn.execute_fetchall(f"{_WITH_MACS} WHERE t.token_hash = ?", (token_hash,)))
    if not rows or not _rows_ok(macs, rows[0]):
        return None
    return _token(rows[0][:7])


async def revoke_token_txn(
    conn: aiosqlite.Connection, macs: RowMacs, token_hash: bytes, revoked_at: int
) -> bool:
    where = "token_hash = ? AND revoked_at IS NULL"
    changes = {"revoked_at": revoked_at}
    return bool(await update_rows_txn(conn, macs, AUTH_TOKENS, where, (token_hash,), changes))


async def revoke_user_tokens_txn(
    conn: aiosqlite.Connection, macs: RowMacs, user_id: int, revoked_at: int
) -> int:
    where = "user_id = ? AND revoked_at IS NULL"
    changes = {"revoked_at": revoked_at}
    return len(await update_rows_txn(conn, macs, AUTH_TOKENS, where, (user_id,), changes))


async def revoke_other_tokens_txn(
    conn: aiosqlite.Connection, macs: RowMacs, user_id: int, keep: bytes, revoked_at: int
) -> list[bytes]:
    """Revoke every live token of the user but ``keep``; the digests revoked (the caller's
    write transaction makes the read and the update one step)."""
    where = "user_id = ? AND revoked_at IS NULL AND token_hash != ?"
    changes = {"revoked_at": revoked_at}
    done = await update_rows_txn(conn, macs, AUTH_TOKENS, where, (user_id, keep), changes)
    return sorted(bytes(pk[0]) for pk in done)


async def invalid_tokens_txn(
    conn: aiosqlite.Connection, macs: RowMacs, token_hashes: list[bytes], now_ms: int
) -> set[bytes]:
    """Which of ``token_hashes`` no longer authorise anything: unknown, revoked, expired,
    belonging to a disabled account, or whose row or account row fails its MAC.  One query
    per 500 tokens."""
    valid: set[bytes] = set()
    for start in range(0, len(token_hashes), 500):
        chunk = token_hashes[start : start + 500]
        rows = await conn.execute_fetchall(
            f"{_WITH_MACS} WHERE t.token_hash IN ({','.join('?' * len(chunk))})"
            " AND t.revoked_at IS NULL AND t.expires_at > ? AND u.disabled = 0",
            [*chunk, now_ms],
        )
        valid.update(bytes(r[0]) for r in rows if _rows_ok(macs, r))
    return set(token_hashes) - valid


async def purge_tokens_txn(conn: aiosqlite.Connection, expired_before: int) -> int:
    cursor = await conn.execute("DELETE FROM auth_tokens WHERE expires_at < ?", (expired_before,))
    return int(cursor.rowcount)


class SqliteTokens:
    """The token half of :class:`~chatd.store.contract.AccountStore` on SQLite.

    Tokens are not what the writer's conversation cache holds: every job keeps the cache."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx

    async def create_session_token(
        self, token: SessionToken, *, password_hash: str | None = None
    ) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            if password_hash is not None:
                await check_credentials_unchanged_txn(conn, token.user_id, password_hash)
            await insert_token_txn(conn, self._ctx.row_macs, token)

        await self._ctx.write("create_session_token", run, keeps_conversation_cache=True)

    async def find_session_token(self, token_hash: bytes) -> SessionToken | None:
        async with self._ctx.read("read_session_token") as conn:
            return await find_token_txn(conn, self._ctx.row_macs, token_hash)

    async def revoke_session_token(self, token_hash: bytes, revoked_at: int) -> bool:
        return await self._ctx.write(
            "revoke_session_token",
            lambda conn: revoke_token_txn(conn, self._ctx.row_macs, token_hash, revoked_at),
            keeps_conversation_cache=True,
        )

    async def list_session_tokens(self, user_id: int, now_ms: int) -> list[SessionToken]:
        async with self._ctx.read("read_live_tokens") as conn:
            return await live_tokens_txn(conn, user_id, now_ms)

    async def revoke_other_session_tokens(
        self, user_id: int, keep: bytes, revoked_at: int
    ) -> list[bytes]:
        return await self._ctx.write(
            "revoke_other_tokens",
            lambda conn: revoke_other_tokens_txn(
                conn, self._ctx.row_macs, user_id, keep, revoked_at
            ),
            keeps_conversation_cache=True,
        )

    async def revoke_user_tokens(self, user_id: int, revoked_at: int) -> int:
        return await self._ctx.write(
            "revoke_user_tokens",
            lambda conn: revoke_user_tokens_txn(conn, self._ctx.row_macs, user_id, revoked_at),
            keeps_conversation_cache=True,
        )

    async def invalid_session_tokens(
        self, token_hashes: Sequence[bytes], now_ms: int
    ) -> set[bytes]:
        async with self._ctx.read("read_invalid_tokens") as conn:
            return await invalid_tokens_txn(conn, self._ctx.row_macs, list(token_hashes), now_ms)

    async def purge_session_tokens(self, expired_before: int) -> int:
        return await self._ctx.write(
            "purge_session_tokens",
            lambda conn: purge_tokens_txn(conn, expired_before),
            keeps_conversation_cache=True,
        )
