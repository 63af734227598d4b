"""SCAFFOLD: the PostgreSQL keys part, to be written (mirrors chatd/store/sqlite/keys.py)."""

from __future__ import annotations

from typing import Any


class PostgresKeys:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def rewrap_data_keys(self, ring: KeyRing, *, audit: AdminAction | None = None) -> int:
        raise NotImplementedError("postgres keys.rewrap_data_keys")

    async def kek_ids_in_use(self) -> set[str]:
        raise NotImplementedError("postgres keys.kek_ids_in_use")

    async def row_mac_kek_ids(self) -> set[str]:
        raise NotImplementedError("postgres keys.row_mac_kek_ids")

    async def expired_conversations(self, last_event_before_ms: int) -> list[int]:
        raise NotImplementedError("postgres keys.expired_conversations")

    async def shred_conversation(
        self, conv_id: int, *, audit: AdminAction | None = None
    ) -> list[int]:
        raise NotImplementedError("postgres keys.shred_conversation")
