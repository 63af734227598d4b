"""SCAFFOLD: the PostgreSQL audit part, to be written (mirrors chatd/store/sqlite/audit.py)."""

from __future__ import annotations

from typing import Any


async def audit_key_txn(
    conn: aiosqlite.Connection, keys: DataKeys, now_ms: int, *, create: bool
) -> bytes | None:
    raise NotImplementedError("postgres audit.audit_key_txn")


def _counts_json(action: AdminAction) -> str:
    raise NotImplementedError("postgres audit._counts_json")


def _entry(row: Sequence[Any]) -> AuditEntry:
    raise NotImplementedError("postgres audit._entry")


async def append_admin_action_txn(
    conn: aiosqlite.Connection, keys: DataKeys, action: AdminAction, now_ms: int
) -> AuditEntry:
    raise NotImplementedError("postgres audit.append_admin_action_txn")


class PostgresAdminAudit:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def append_admin_action(self, action: AdminAction) -> AuditEntry:
        raise NotImplementedError("postgres audit.append_admin_action")

    async def admin_actions(self, query: AuditQuery) -> list[AuditEntry]:
        raise NotImplementedError("postgres audit.admin_actions")


def _broken(seq: int, msgid: str, **params: object) -> VerifyProblem:
    raise NotImplementedError("postgres audit._broken")


async def verify_audit_chain_txn(
    conn: aiosqlite.Connection, keys: DataKeys
) -> tuple[int, VerifyProblem | None]:
    raise NotImplementedError("postgres audit.verify_audit_chain_txn")
