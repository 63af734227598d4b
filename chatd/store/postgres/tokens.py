"""SCAFFOLD: the PostgreSQL tokens part, to be written (mirrors chatd/store/sqlite/tokens.py)."""

from __future__ import annotations

from typing import Any


def _token(row: Any) -> SessionToken:
    raise NotImplementedError("postgres tokens._token")


async def insert_token_txn(conn: aiosqlite.Connection, macs: RowMacs, token: SessionToken) -> None:
    raise NotImplementedError("postgres tokens.insert_token_txn")


async def live_tokens_txn(
    conn: aiosqlite.Connection, user_id: int, now_ms: int
) -> list[SessionToken]:
    raise NotImplementedError("postgres tokens.live_tokens_txn")


def _rows_ok(macs: RowMacs, row: Any) -> bool:
    raise NotImplementedError("postgres tokens._rows_ok")


async def find_token_txn(
    conn: aiosqlite.Connection, macs: RowMacs, token_hash: bytes
) -> SessionToken | None:
    raise NotImplementedError("postgres tokens.find_token_txn")


async def revoke_token_txn(
    conn: aiosqlite.Connection, macs: RowMacs, token_hash: bytes, revoked_at: int
) -> bool:
    raise NotImplementedError("postgres tokens.revoke_token_txn")


async def revoke_user_tokens_txn(
    conn: aiosqlite.Connection, macs: RowMacs, user_id: int, revoked_at: int
) -> int:
    raise NotImplementedError("postgres tokens.revoke_user_tokens_txn")


async def revoke_other_tokens_txn(
    conn: aiosqlite.Connection, macs: RowMacs, user_id: int, keep: bytes, revoked_at: int
) -> list[bytes]:
    raise NotImplementedError("postgres tokens.revoke_other_tokens_txn")


async def invalid_tokens_txn(
    conn: aiosqlite.Connection, macs: RowMacs, token_hashes: list[bytes], now_ms: int
) -> set[bytes]:
    raise NotImplementedError("postgres tokens.invalid_tokens_txn")


async def purge_tokens_txn(conn: aiosqlite.Connection, expired_before: int) -> int:
    raise NotImplementedError("postgres tokens.purge_tokens_txn")


class PostgresTokens:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def create_session_token(self, token: SessionToken) -> None:
        raise NotImplementedError("postgres tokens.create_session_token")

    async def find_session_token(self, token_hash: bytes) -> SessionToken | None:
        raise NotImplementedError("postgres tokens.find_session_token")

    async def revoke_session_token(self, token_hash: bytes, revoked_at: int) -> bool:
        raise NotImplementedError("postgres tokens.revoke_session_token")

    async def list_session_tokens(self, user_id: int, now_ms: int) -> list[SessionToken]:
        raise NotImplementedError("postgres tokens.list_session_tokens")

    async def revoke_other_session_tokens(
        self, user_id: int, keep: bytes, revoked_at: int
    ) -> list[bytes]:
        raise NotImplementedError("postgres tokens.revoke_other_session_tokens")

    async def revoke_user_tokens(self, user_id: int, revoked_at: int) -> int:
        raise NotImplementedError("postgres tokens.revoke_user_tokens")

    async def invalid_session_tokens(
        self, token_hashes: Sequence[bytes], now_ms: int
    ) -> set[bytes]:
        raise NotImplementedError("postgres tokens.invalid_session_tokens")

    async def purge_session_tokens(self, expired_before: int) -> int:
        raise NotImplementedError("postgres tokens.purge_session_tokens")
