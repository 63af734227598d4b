"""SCAFFOLD: the PostgreSQL history part (epoch + checkpoints), to be written."""

from __future__ import annotations

from typing import Any

from chatd.core.checkpoint_audit import CheckpointState
from chatd.store.postgres.db import transaction


class PostgresHistory:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx
        self._epoch: str | None = None

    @property
    def epoch(self) -> str:
        assert self._epoch is not None
        return self._epoch

    async def open(self) -> None:
        import secrets

        async def run(conn: Any) -> str:
            epoch = await conn.fetchval("SELECT epoch FROM store_epoch")
            if epoch is None:
                epoch = secrets.token_hex(16)
                await conn.execute(
                    "INSERT INTO store_epoch (epoch, declared_at) VALUES ($1, $2)", epoch, 0
                )
            return str(epoch)

        self._epoch = await self._ctx.write("read_epoch", run)

    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def state(self) -> CheckpointState:
        return CheckpointState(None, ())


__all__ = ["transaction"]
