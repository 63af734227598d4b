"""SCAFFOLD: the PostgreSQL verify part, to be written (mirrors chatd/store/sqlite/verify.py)."""

from __future__ import annotations

from typing import Any


def _why(exc: Exception) -> Text | str:
    raise NotImplementedError("postgres verify._why")


def _problem(
    conv_id: int, seq: int, msgid: str, user_id: int | None = None, **params: object
) -> VerifyProblem:
    raise NotImplementedError("postgres verify._problem")


async def verify_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv_ids: Sequence[int] | None
) -> VerifyReport:
    raise NotImplementedError("postgres verify.verify_txn")


def unreadable(exc: Exception, conv_id: int = 0) -> VerifyProblem:
    raise NotImplementedError("postgres verify.unreadable")


async def integrity_check_txn(conn: aiosqlite.Connection) -> list[VerifyProblem]:
    raise NotImplementedError("postgres verify.integrity_check_txn")


async def verify_chains_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv_ids: Sequence[int] | None
) -> VerifyReport:
    raise NotImplementedError("postgres verify.verify_chains_txn")


async def _verify_profiles_txn(conn: aiosqlite.Connection, keys: DataKeys) -> list[VerifyProblem]:
    raise NotImplementedError("postgres verify._verify_profiles_txn")


async def _verify_one_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv: tuple[Any, ...], creations: list[IdemRow]
) -> tuple[int, VerifyProblem | None]:
    raise NotImplementedError("postgres verify._verify_one_txn")


async def _walk_txn(
    conn: aiosqlite.Connection,
    keys: DataKeys,
    conv: tuple[Any, ...],
    live: set[int],
    facts: LogFacts,
    operations: OperationCheck,
    operation_rows: aiosqlite.Cursor,
) -> tuple[int, VerifyProblem | None]:
    raise NotImplementedError("postgres verify._walk_txn")
