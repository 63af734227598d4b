"""SCAFFOLD: this node's group-commit writer on PostgreSQL (being written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatd.core.conversations import Operation
from chatd.core.records import AppendResult


class GroupCommitWriter:
    def __init__(
        self, pool: Any, keys: Any, *, max_batch: int, clock_ms: Callable[[], int]
    ) -> None:
        self.batches = 0

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def forget_conversations(self) -> None:
        pass

    async def apply(self, op: Operation) -> AppendResult:
        raise NotImplementedError("postgres writer.apply")
