"""The history's identity and anchors on SQLite: the store epoch and the signed checkpoints.

One part of :class:`~chatd.store.sqlite.store.SqliteStore`, like the others: it reads the
epoch at open, declares a new one (with or without a rewind), and drives the backend-neutral
:class:`~chatd.store.checkpointer.Checkpointer` over this database's reads
(:mod:`.chain_reads`).  The writer's commits feed the checkpointer (``on_commit``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from chatd.core.audit import AdminAction
from chatd.core.checkpoint_audit import CheckpointState, Departure
from chatd.core.checkpoints import Checkpoint
from chatd.core.errors import StoreClosedError
from chatd.core.records import VerifyReport
from chatd.crypto.keyring import KeyRing
from chatd.store.checkpoint_log import CheckpointLog
from chatd.store.checkpointer import Checkpointer
from chatd.store.sqlite.audit import append_admin_action_txn
from chatd.store.sqlite.chain_reads import SqliteChainReads
from chatd.store.sqlite.checkpoint_verify import (
    Anchor,
    extends_checkpoint_txn,
    read_checkpoint_log,
)
from chatd.store.sqlite.context import SqliteContext
from chatd.store.sqlite.db import new_epoch, read_epoch_txn, write_epoch_txn

log = logging.getLogger("chatd.store")
# Migration 10 came with checkpoints (issue 13): a database opened at a version before it
# was never checkpointed, so its first open by this code starts the log.
FIRST_CHECKPOINTED_SCHEMA = 10


class SqliteHistory:
    def __init__(
        self,
        ctx: SqliteContext,
        ring: KeyRing,
        log_path: Path,
        *,
        interval: float,
        clock_ms: Callable[[], int],
    ) -> None:
        self._ctx = ctx
        self._epoch: str | None = None
        self.reads = SqliteChainReads(ctx)
        self.checkpoints = Checkpointer(
            CheckpointLog(log_path),
            ring,
            self.reads,
            epoch=lambda: self.epoch,
            clock_ms=clock_ms,
            interval=interval,
        )

    @property
    def epoch(self) -> str:
        if self._epoch is None:
            raise StoreClosedError()
        return self._epoch

    async def open(self) -> None:
        """Read the epoch and the checkpoint log's tail (the writer is running)."""
        async with self._ctx.read("read_epoch") as conn:
            self._epoch = await read_epoch_txn(conn)
        await self.checkpoints.open(expects_log=self._expects_log)

    def start(self) -> None:
        self._ctx.writer.on_commit.append(self.checkpoints.note)
        self.checkpoints.start()

    async def close(self) -> None:
        """The clean stop's checkpoint: after the writer stopped, before connections close."""
        await self._ctx.writer.stop()  # every commit noted before the last checkpoint
        await self.checkpoints.close()

    async def _expects_log(self) -> bool:
        """A database with history that was already at the schema of checkpoints before this
        open must have its log; a first start after the upgrade (or a new database) starts it
        (a new database has nothing to lose; an upgraded one had no log to lose)."""
        if self._ctx.schema_at_open < FIRST_CHECKPOINTED_SCHEMA:
            if self._ctx.schema_at_open:
                log.warning("starting the checkpoint log at %s", self.checkpoints.log.path)
            return False
        return await self.reads.has_history()

    async def declare_new_epoch(self, audit: AdminAction | None, *, rewind: bool) -> str:
        """A new epoch, durably, with ``audit`` recorded in the same transaction; then a
        checkpoint that names it (``rewind``: a base of the database as it is)."""
        epoch, now = new_epoch(), self._ctx.clock_ms()

        async def run(conn: aiosqlite.Connection) -> None:
            await write_epoch_txn(conn, epoch, now)
            if audit is not None:
                await append_admin_action_txn(conn, self._ctx.keys, audit.with_target(epoch), now)

        name = "declare_rewind" if rewind else "declare_new_epoch"
        await self._ctx.write(name, run, keeps_conversation_cache=True)
        self._epoch = epoch
        if rewind:
            await self.checkpoints.declare_rewind()
        else:
            await self.checkpoints.take()  # the log names the new epoch at once
        return epoch

    async def rotated(self, ring: KeyRing) -> None:
        """After a KEK rotation: checkpoints signed under the new KEK at once, so that
        retiring the old one leaves the last checkpoint checkable."""
        self.checkpoints.use_ring(ring)
        await self.checkpoints.take(force=True)

    # ------------------------------------------------------------------ the contract

    def state(self) -> CheckpointState:
        return self.checkpoints.state

    async def departures(self) -> list[Departure]:
        return await self.checkpoints.departures()

    async def take(self, *, force: bool = False) -> Checkpoint | None:
        return await self.checkpoints.take(force=force)

    async def wait_for(self, n: int) -> Checkpoint:
        return await self.checkpoints.wait_for(n)

    async def last_rewind(self) -> Checkpoint:
        last = self.checkpoints.state.last
        assert last is not None  # declare_rewind always leaves one
        return last

    # ------------------------------------------------------------------ verify

    async def anchor(self, other_log: Path | None) -> Anchor:
        """What verify checks the database against: the whole log (or an off-host copy)."""
        return await read_checkpoint_log(
            CheckpointLog(other_log) if other_log else self.checkpoints.log,
            self._ctx.keys.ring,
            has_history=self.reads.has_history,
        )

    @staticmethod
    async def extends_txn(
        conn: aiosqlite.Connection, anchor: Anchor, report: VerifyReport
    ) -> VerifyReport:
        return await extends_checkpoint_txn(conn, anchor, report)
