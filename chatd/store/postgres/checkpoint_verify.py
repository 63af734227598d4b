"""SCAFFOLD: the PostgreSQL checkpoint_verify part, to be written (mirrors chatd/store/sqlite/checkpoint_verify.py)."""

from __future__ import annotations

from typing import Any


async def read_checkpoint_log(
    log_file: CheckpointLog, ring: KeyRing, *, has_history: Callable[[], Awaitable[bool]]
) -> Anchor:
    raise NotImplementedError("postgres checkpoint_verify.read_checkpoint_log")


async def extends_checkpoint_txn(
    conn: aiosqlite.Connection, anchor: Anchor, report: VerifyReport
) -> VerifyReport:
    raise NotImplementedError("postgres checkpoint_verify.extends_checkpoint_txn")


async def _departures_txn(
    conn: aiosqlite.Connection, anchor: Anchor, last: Checkpoint
) -> list[VerifyProblem]:
    raise NotImplementedError("postgres checkpoint_verify._departures_txn")
