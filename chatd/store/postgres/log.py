"""SCAFFOLD: the PostgreSQL log part, to be written (mirrors chatd/store/sqlite/log.py)."""

from __future__ import annotations

from typing import Any


def check_limit(limit: int) -> None:
    raise NotImplementedError("postgres log.check_limit")


async def load_conv_key_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv_id: int, version: int
) -> None:
    raise NotImplementedError("postgres log.load_conv_key_txn")


async def open_events_txn(
    conn: aiosqlite.Connection, keys: DataKeys, rows: Iterable[Any]
) -> list[Event]:
    raise NotImplementedError("postgres log.open_events_txn")


async def window_start_txn(
    conn: aiosqlite.Connection, user_id: int, conv_id: int, window_size: int
) -> tuple[int, bool]:
    raise NotImplementedError("postgres log.window_start_txn")


async def _page_txn(
    conn: aiosqlite.Connection,
    keys: DataKeys,
    user_id: int,
    conv_id: int,
    where: str,
    params: dict[str, Any],
    limit: int,
    newest_first: bool,
) -> tuple[list[Event], bool]:
    raise NotImplementedError("postgres log._page_txn")


class PostgresLog:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def apply(self, op: Operation) -> AppendResult:
        raise NotImplementedError("postgres log.apply")

    async def current_members(self, conv_id: int) -> frozenset[int]:
        raise NotImplementedError("postgres log.current_members")

    async def intervals(self, user_id: int, conv_id: int) -> tuple[Interval, ...]:
        raise NotImplementedError("postgres log.intervals")

    async def fellow_members(self, user_id: int, others: Sequence[int]) -> frozenset[int]:
        raise NotImplementedError("postgres log.fellow_members")

    async def visible_window(self, user_id: int, conv_id: int) -> EventPage:
        raise NotImplementedError("postgres log.visible_window")

    async def events_after(
        self, user_id: int, conv_id: int, after_seq: int, limit: int
    ) -> EventPage:
        raise NotImplementedError("postgres log.events_after")

    async def events_before(
        self, user_id: int, conv_id: int, before_seq: int, limit: int
    ) -> EventPage:
        raise NotImplementedError("postgres log.events_before")

    async def conversation_heads(self, user_id: int) -> list[ConversationHead]:
        raise NotImplementedError("postgres log.conversation_heads")

    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]:
        raise NotImplementedError("postgres log.audience")

    async def export_events(
        self, after: tuple[int, int] = (0, 0), limit: int = 1000
    ) -> list[Event]:
        raise NotImplementedError("postgres log.export_events")
