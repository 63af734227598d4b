"""The history's identity and anchors on PostgreSQL: the store epoch and the signed
checkpoints, taken by one node of the cluster at a time.

The twin of :mod:`chatd.store.sqlite.history`: it reads the epoch at open, declares a new
one (with or without a rewind), and drives the backend-neutral
:class:`~chatd.store.checkpointer.Checkpointer` over this database's reads
(:mod:`.chain_reads`).  What differs is that several nodes append at once:

* **One node takes the periodic checkpoints**: the holder of the checkpoint lease
  (:class:`.lease.AdvisoryLease`, a session-level advisory lock on a connection held for
  the store's life; PostgreSQL releases it when that node's session dies).  Every other
  node tries to take the lease at each interval, so when the holder dies or stops another
  takes over, and meanwhile follows the log (:meth:`Checkpointer.follow`) so that its
  state (``/healthz``, :meth:`wait_for`) stays current.  Should two nodes both believe
  they hold it for a moment, the log stays right: its flock serialises the appends, each
  appender replays the others' records first, and a checkpoint never records a head
  behind the log's.
* **The holder reads the heads, every node's**: SQLite's writer hands its heads over after
  each commit; here another node's commits never pass through this process, so the holder
  reads ``WHERE head_version > since`` (:func:`.chain_reads.changed_heads_txn`) at each
  interval, plus the admin audit log's head, as on SQLite.  A node that takes the lease
  starts from ``since = 0`` (one full read): it does not know how far the previous holder
  had checkpointed.  An explicit checkpoint of a node that does not hold the lease (an
  operator's ``new-epoch``, a key rotation) reads everything the same way.
* **The watermark lags on purpose** (:class:`Watermark`): ``head_version`` comes from a
  sequence, and values do not commit in the order they are drawn.  A transaction that drew
  5 may commit after one that drew 9; a reader that moved ``since`` to 9 would never see
  the 5.  So ``since`` only moves to the highest value seen by an *earlier* read j once
  (a) every transaction that snapshot j counted as running has ended (the current
  snapshot's ``xmin`` has passed snapshot j's ``xmax``: ``pg_current_snapshot``), and
  (b) :data:`MARGIN_S` seconds have passed since read j, for a transaction that had drawn
  its value but was not yet counted in snapshot j (its xid is assigned just after the
  trigger draws, or lies above the last completed one): a batch transaction lasts
  milliseconds.  Every value drawn after snapshot j is above j's highest, so nothing below
  the new ``since`` can still commit.  The price: rows changed in the last ``MARGIN_S``
  seconds are read again at each interval (the checkpointer leaves out heads that did not
  move), and every :data:`FULL_READ_S` seconds the holder reads every head again, which
  bounds what a transaction stalled past the margin could delay.
* **The checkpoint names the epoch read with the heads**, so that an epoch an operator
  declared from another process is named by the holder's next checkpoint too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatd.core.audit import AdminAction
from chatd.core.checkpoint_audit import CheckpointState, Departure
from chatd.core.checkpoints import Checkpoint
from chatd.core.errors import DatabaseUnavailable, StoreClosedError
from chatd.core.records import VerifyReport
from chatd.crypto.keyring import KeyRing
from chatd.store.checkpoint_log import CheckpointLog
from chatd.store.checkpointer import Checkpointer
from chatd.store.postgres.audit import append_admin_action_txn
from chatd.store.postgres.chain_reads import (
    Changes,
    PostgresChainReads,
    read_epoch_txn,
    write_epoch_txn,
)
from chatd.store.postgres.checkpoint_verify import (
    Anchor,
    extends_checkpoint_txn,
    read_checkpoint_log,
)
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection
from chatd.store.postgres.lease import CHECKPOINT_LEASE, AdvisoryLease

log = logging.getLogger("chatd.store")

MARGIN_S = 30.0  # far beyond a batch transaction's life (milliseconds)
FULL_READ_S = 600.0


@dataclass(frozen=True, slots=True)
class _Read:
    top: int  # the highest head_version it saw
    xmax: int  # its snapshot's xmax
    at: float  # monotonic seconds


class Watermark:
    """``since``: every head change with a ``head_version`` at or below it has been read
    (and handed to the checkpointer).  See the module's docstring for why it lags."""

    def __init__(
        self,
        *,
        margin_s: float = MARGIN_S,
        full_read_s: float = FULL_READ_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._margin_s = margin_s
        self._full_read_s = full_read_s
        self._now = now
        self.since = 0
        self._reads: deque[_Read] = deque()
        self._full_at = now()

    def reset(self) -> None:
        """Read everything next time."""
        self.since = 0
        self._reads.clear()
        self._full_at = self._now()

    def seen(self, changes: Changes) -> None:
        """A read of every change above ``since`` was handed over: move ``since`` as far as
        is safe, and remember this read for the next ones."""
        now = self._now()
        if now - self._full_at >= self._full_read_s:
            self.reset()
            return
        reads = self._reads
        while reads and reads[0].xmax <= changes.xmin and now - reads[0].at >= self._margin_s:
            self.since = max(self.since, reads.popleft().top)
        reads.append(_Read(changes.top, changes.xmax, now))


class PostgresHistory:
    def __init__(
        self,
        ctx: PostgresContext,
        ring: KeyRing,
        log_path: Path,
        *,
        interval: float,
        clock_ms: Callable[[], int],
    ) -> None:
        self._ctx = ctx
        self._epoch: str | None = None
        self._checkpoint_epoch: str | None = None  # the epoch read with the last heads
        self._interval = interval
        self.reads = PostgresChainReads(ctx)
        self.watermark = Watermark()
        self._lease: AdvisoryLease | None = None
        self._feeding = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.checkpoints = Checkpointer(
            CheckpointLog(log_path),
            ring,
            self.reads,
            epoch=lambda: self._checkpoint_epoch or self.epoch,
            clock_ms=clock_ms,
            interval=interval,
        )

    @property
    def epoch(self) -> str:
        if self._epoch is None:
            raise StoreClosedError()
        return self._epoch

    @property
    def holds_lease(self) -> bool:
        return self._lease is not None and self._lease.held

    async def open(self) -> None:
        """Read the epoch, try the lease, read the checkpoint log's tail (or start it)."""
        async with self._ctx.read("read_epoch") as conn:
            self._epoch = await read_epoch_txn(conn)
        self._lease = AdvisoryLease(self._ctx.dsn, CHECKPOINT_LEASE, "checkpoints")
        try:
            await self._lease.hold()
            # A database with history has its log (PostgreSQL's schema was born with
            # checkpoints); a new one starts it, whichever node comes first (the flock
            # serialises two that start it at once).
            await self.checkpoints.open(expects_log=self.reads.has_history)
        except BaseException:
            await self._lease.release()
            raise
        if self.checkpoints.state.problems:
            # This node will append nothing: it must not keep the others from it either.
            await self._lease.release()

    def start(self) -> None:
        if self._task is None and not self.checkpoints.state.problems:
            self._task = asyncio.get_running_loop().create_task(
                self._every_interval(), name="chatd-checkpoints"
            )

    async def close(self) -> None:
        """The clean stop's checkpoint (by the lease holder, or by this node if the lease is
        free), after this node's writer stopped, before the connections close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lease = self._lease
        try:
            await self._ctx.writer.stop()  # every commit of this node is in the database
            if lease is not None and not self.state().problems and await lease.hold():
                await self.take()
        except Exception:  # the stop goes on; the next start compares anyway
            log.exception("the checkpoint of a clean stop failed")
        finally:
            self._lease = None
            if lease is not None:
                await lease.release()

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._tick()
            except DatabaseUnavailable:  # PostgreSQL restarting: as the other periodic tasks
                log.warning("checkpoint skipped: the database is unavailable; next interval")
            except Exception:
                log.exception("taking a checkpoint failed; retrying at the next interval")

    async def _tick(self) -> None:
        assert self._lease is not None
        if await self._lease.hold():
            await self.take()
        else:
            self.watermark.reset()  # the holder checkpoints meanwhile: start over if we take
            await self.checkpoints.follow()

    async def declare_new_epoch(self, audit: AdminAction | None, *, rewind: bool) -> str:
        """A new epoch, durably, with ``audit`` recorded in the same transaction; then a
        checkpoint that names it (``rewind``: a base of the database as it is)."""
        # 16 random bytes as 32 hex digits, as migration 1 makes them.
        epoch, now = secrets.token_hex(16), self._ctx.clock_ms()

        async def run(conn: Connection) -> None:
            await write_epoch_txn(conn, epoch, now)
            if audit is not None:
                await append_admin_action_txn(conn, self._ctx.keys, audit.with_target(epoch), now)

        name = "declare_rewind" if rewind else "declare_new_epoch"
        await self._ctx.write(name, run, keeps_conversation_cache=True)
        self._epoch = self._checkpoint_epoch = epoch
        if rewind:
            # A restored database may have restored its head_versions sequence with it.
            async with self._feeding:
                self.watermark.reset()
                await self.checkpoints.declare_rewind()
        else:
            await self.take()  # the log names the new epoch at once
        return epoch

    async def rotated(self, ring: KeyRing) -> None:
        """After a KEK rotation: checkpoints signed under the new KEK at once, so that
        retiring the old one leaves the last checkpoint checkable."""
        self.checkpoints.use_ring(ring)
        await self.take(force=True)

    # ------------------------------------------------------------------ the contract

    def state(self) -> CheckpointState:
        return self.checkpoints.state

    async def departures(self) -> list[Departure]:
        return await self.checkpoints.departures()

    async def take(self, *, force: bool = False) -> Checkpoint | None:
        """Read the heads changed since the watermark (everything, for a node that does not
        hold the lease), hand them to the checkpointer, and append a checkpoint if a head
        moved (``force``: even if none did)."""
        async with self._feeding:
            if not self.holds_lease:
                self.watermark.reset()
            changes = await self.reads.changed_heads(self.watermark.since)
            self.checkpoints.note(changes.heads)
            self.watermark.seen(changes)
            if changes.epoch is not None and changes.epoch != self._checkpoint_epoch:
                if self._checkpoint_epoch is not None:
                    # Declared by another process; after a declared rewind, the restored
                    # database's head_versions may be behind the watermark: read it all.
                    log.warning("the store epoch was changed by another process")
                    self.watermark.reset()
                self._checkpoint_epoch = changes.epoch
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
    async def extends_txn(conn: Connection, anchor: Anchor, report: VerifyReport) -> VerifyReport:
        return await extends_checkpoint_txn(conn, anchor, report)
