"""SCAFFOLD: the PostgreSQL consistency part, to be written (mirrors chatd/store/sqlite/consistency.py)."""

from __future__ import annotations

from typing import Any


def _is_int(value: object) -> bool:
    raise NotImplementedError("postgres consistency._is_int")


def conversation_problem(
    conv: Sequence[Any], facts: LogFacts, keys: Sequence[KeyRow]
) -> str | None:
    raise NotImplementedError("postgres consistency.conversation_problem")


async def conv_keys_txn(conn: aiosqlite.Connection, conv_id: int) -> list[KeyRow]:
    raise NotImplementedError("postgres consistency.conv_keys_txn")


async def creations_txn(conn: aiosqlite.Connection) -> dict[object, list[IdemRow]]:
    raise NotImplementedError("postgres consistency.creations_txn")


async def audit_key_problem_txn(conn: aiosqlite.Connection) -> VerifyProblem | None:
    raise NotImplementedError("postgres consistency.audit_key_problem_txn")
