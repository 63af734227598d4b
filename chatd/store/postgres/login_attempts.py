"""SCAFFOLD: the PostgreSQL login_attempts part, to be written (mirrors chatd/store/sqlite/login_attempts.py)."""

from __future__ import annotations

from typing import Any


async def forget_old_attempts_txn(conn: aiosqlite.Connection, started_before: int) -> None:
    raise NotImplementedError("postgres login_attempts.forget_old_attempts_txn")


async def attempt_counts_txn(
    conn: aiosqlite.Connection, login_key: bytes, address_key: bytes, since: int
) -> AttemptCounts:
    raise NotImplementedError("postgres login_attempts.attempt_counts_txn")


async def begin_attempt_txn(
    conn: aiosqlite.Connection,
    login_key: bytes,
    address_key: bytes,
    limits: ThrottleLimits,
    now_ms: int,
) -> Admission:
    raise NotImplementedError("postgres login_attempts.begin_attempt_txn")


async def end_attempt_txn(
    conn: aiosqlite.Connection, attempt_id: int, succeeded: bool, now_ms: int
) -> None:
    raise NotImplementedError("postgres login_attempts.end_attempt_txn")


class PostgresLoginAttempts:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    def open(self, directory_version: int) -> None:
        raise NotImplementedError("postgres login_attempts.open")

    def _blind(self, domain: bytes, value: str) -> bytes:
        raise NotImplementedError("postgres login_attempts._blind")

    async def begin_login_attempt(
        self, login: str, address: str, limits: ThrottleLimits, now_ms: int
    ) -> Admission:
        raise NotImplementedError("postgres login_attempts.begin_login_attempt")

    async def end_login_attempt(self, attempt_id: int, *, succeeded: bool, now_ms: int) -> None:
        raise NotImplementedError("postgres login_attempts.end_login_attempt")
