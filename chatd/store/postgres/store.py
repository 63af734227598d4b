"""The asyncpg implementation of the store contract, composed of one part per concern.

The twin of :class:`chatd.store.sqlite.SqliteStore`, part for part, on one PostgreSQL
database shared by every node (:mod:`.context` says how each part stays right with other
nodes writing at the same time).  Conversation operations go through this node's
group-commit writer (:mod:`.writer`); reads are one read-only snapshot each.

:class:`~chatd.store.composed.ComposedStore` forwards most contract methods to the parts;
what stays here is PostgreSQL's own: opening and closing (with the job leases of
:mod:`.lease`), the writer, the reads in a snapshot of its own (``ping``, ``chain_views``,
``verify``) and the sweep that nodes share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from chatd.core.clock import wall_clock_ms
from chatd.core.conversations import Operation
from chatd.core.errors import DatabaseDamaged
from chatd.core.records import AppendResult, ChainView, VerifyProblem, VerifyReport
from chatd.crypto.keyring import KeyRing
from chatd.store.composed import ComposedStore
from chatd.store.head_feed import HeadWatch
from chatd.store.postgres.attachments import PostgresAttachments
from chatd.store.postgres.audit import PostgresAdminAudit
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.head_watch import PostgresHeadWatch
from chatd.store.postgres.heads import chain_views_txn
from chatd.store.postgres.history import PostgresHistory
from chatd.store.postgres.inbox import PostgresInbox
from chatd.store.postgres.keys import PostgresKeys
from chatd.store.postgres.lease import JobLeases
from chatd.store.postgres.live_sessions import PostgresLiveSessions
from chatd.store.postgres.log import PostgresLog
from chatd.store.postgres.login_attempts import PostgresLoginAttempts
from chatd.store.postgres.tokens import PostgresTokens
from chatd.store.postgres.upload_budgets import PostgresUploadBudgets
from chatd.store.postgres.users import PostgresUsers
from chatd.store.postgres.verify import verify_txn


class PostgresStore(ComposedStore):
    # The parts this class calls on beyond what the shared forwarding needs.
    _users: PostgresUsers
    _attempts: PostgresLoginAttempts
    _attachments: PostgresAttachments
    _history: PostgresHistory

    def __init__(
        self,
        dsn: str,
        ring: KeyRing,
        *,
        checkpoint_log: Path,
        visible_window: int = 200,
        max_batch: int = 512,
        pool_size: int = 10,
        clock_ms: Callable[[], int] = wall_clock_ms,
        checkpoint_seconds: float = 5.0,
        migrate: bool = True,
    ) -> None:
        self.dsn = dsn
        self.window_size = visible_window
        self._ctx = ctx = PostgresContext(
            dsn,
            ring,
            window_size=visible_window,
            max_batch=max_batch,
            clock_ms=clock_ms,
            pool_size=pool_size,
            migrate=migrate,
        )
        self._log = PostgresLog(ctx)
        self._users = PostgresUsers(ctx)
        self._tokens = PostgresTokens(ctx)
        self._attempts = PostgresLoginAttempts(ctx)
        self._uploads = PostgresUploadBudgets(ctx)
        self._live = PostgresLiveSessions(ctx)
        self._inbox = PostgresInbox(ctx)
        self._keys = PostgresKeys(ctx)
        self._attachments = PostgresAttachments(ctx)
        self._audit = PostgresAdminAudit(ctx)
        self._history = PostgresHistory(
            ctx,
            ring,
            checkpoint_log,
            interval=checkpoint_seconds,
            clock_ms=clock_ms,
        )
        self._opened = False
        self._leases = JobLeases(dsn)

    @property
    def group_commits(self) -> int:
        """Batches committed by the writer since :meth:`open` (benchmarks report the mean
        batch size)."""
        return self._ctx.writer.batches

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        await self._ctx.open()  # closes what it opened if it fails
        try:
            await self._users.open_directory()
            self._attempts.open(self._users.directory_version)
            await self._history.open()
        except BaseException:
            await self._ctx.close()
            raise
        self._history.start()
        self._opened = True

    async def close(self) -> None:
        opened, self._opened = self._opened, False
        await self._leases.release_all()
        try:
            if opened:
                await self._history.close()
        finally:
            await self._ctx.close()

    async def head_watch(self) -> HeadWatch:
        return await PostgresHeadWatch.start(self._ctx)

    async def hold_lease(self, job: str) -> bool:
        return await self._leases.hold(job) if self._opened else False

    async def ping(self) -> None:
        async with self._ctx.read("ping") as conn:
            await conn.fetchval("SELECT epoch FROM store_epoch")

    # ----------------------------------------------------------------- log

    async def apply(self, op: Operation) -> AppendResult:
        return await self._ctx.apply(op)

    async def chain_views(
        self, user_id: int, positions: Sequence[tuple[int, int]]
    ) -> list[ChainView]:
        async with self._ctx.read("read_chain_views") as conn:
            return await chain_views_txn(conn, user_id, positions)

    # ----------------------------------------------------------------- the row audit

    async def verify(
        self, conv_ids: Sequence[int] | None = None, *, checkpoint_log: Path | None = None
    ) -> VerifyReport:
        report: VerifyReport | None = None
        # The log first, the database's snapshot after: the log only holds committed heads,
        # so a snapshot taken later holds every one of them.
        anchor = None if conv_ids is not None else await self._history.anchor(checkpoint_log)
        try:
            async with self._ctx.read("verify_rows") as conn:
                report = await verify_txn(conn, self._ctx.keys, conv_ids)
                if anchor is not None:
                    report = await self._history.extends_txn(conn, anchor, report)
        except DatabaseDamaged as exc:
            # The audit reports what it cannot read; only beginning or ending its read
            # transaction can still fail on a damaged file.
            if report is None:
                report = VerifyReport(0, 0, (VerifyProblem(0, 0, exc.text),))
        return report

    # ----------------------------------------------------------------- attachment rows

    async def sweep_attachments(self, now_ms: int) -> list[int]:
        # Not the contract's loop: nodes sweeping at once split the rows (SKIP LOCKED).
        return await self._attachments.sweep_attachments(now_ms)
