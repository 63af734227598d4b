"""The aiosqlite implementation of the store contract, composed of one part per concern.

:class:`SqliteStore` owns a :class:`~chatd.store.sqlite.context.SqliteContext` (connections,
the single writer, data keys, clock) and hands it to each part — :mod:`.log`, :mod:`.users`,
:mod:`.tokens`, :mod:`.login_attempts`, :mod:`.upload_budgets`, :mod:`.live_sessions`,
:mod:`.inbox`, :mod:`.keys`, :mod:`.attachments`, :mod:`.audit`, :mod:`.heads`,
:mod:`.history` (the epoch and the checkpoints), :mod:`.verify`.
:class:`~chatd.store.composed.ComposedStore` forwards most contract methods to the part that
owns them; what stays here is SQLite's own: opening and closing, the writer, the reads in a
transaction of its own (``ping``, ``chain_views``, ``verify``) and the lease of the one
server.  Writes go through the single :class:`~chatd.store.sqlite.writer.GroupCommitWriter`;
reads use a small pool of read connections (WAL lets them read while the writer commits),
each read in one named read transaction so its queries see one snapshot.
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
from chatd.store.sqlite.attachments import SqliteAttachments
from chatd.store.sqlite.audit import SqliteAdminAudit
from chatd.store.sqlite.context import SqliteContext
from chatd.store.sqlite.head_watch import HeadJournal, SqliteHeadWatch
from chatd.store.sqlite.heads import chain_views_txn
from chatd.store.sqlite.history import SqliteHistory
from chatd.store.sqlite.inbox import SqliteInbox
from chatd.store.sqlite.keys import SqliteKeys
from chatd.store.sqlite.live_sessions import SqliteLiveSessions
from chatd.store.sqlite.log import SqliteLog
from chatd.store.sqlite.login_attempts import SqliteLoginAttempts
from chatd.store.sqlite.tokens import SqliteTokens
from chatd.store.sqlite.upload_budgets import SqliteUploadBudgets
from chatd.store.sqlite.users import SqliteUsers
from chatd.store.sqlite.verify import verify_txn


class SqliteStore(ComposedStore):
    # The parts this class calls on beyond what the shared forwarding needs.
    _log: SqliteLog
    _users: SqliteUsers
    _attempts: SqliteLoginAttempts
    _history: SqliteHistory

    def __init__(
        self,
        path: Path,
        ring: KeyRing,
        *,
        visible_window: int = 200,
        synchronous: str = "FULL",
        max_batch: int = 512,
        readers: int = 2,
        clock_ms: Callable[[], int] = wall_clock_ms,
        checkpoint_log: Path | None = None,
        checkpoint_seconds: float = 5.0,
    ) -> None:
        self.path = path
        self.window_size = visible_window
        self._ctx = ctx = SqliteContext(
            path,
            ring,
            window_size=visible_window,
            synchronous=synchronous,
            max_batch=max_batch,
            readers=readers,
            clock_ms=clock_ms,
        )
        self._log = SqliteLog(ctx)
        self._users = SqliteUsers(ctx)
        self._tokens = SqliteTokens(ctx)
        self._attempts = SqliteLoginAttempts(ctx)
        self._uploads = SqliteUploadBudgets(ctx)
        self._live = SqliteLiveSessions(ctx)
        self._inbox = SqliteInbox(ctx)
        self._keys = SqliteKeys(ctx)
        self._attachments = SqliteAttachments(ctx)
        self._audit = SqliteAdminAudit(ctx)
        self._history = SqliteHistory(
            ctx,
            ring,
            checkpoint_log or path.with_name(path.name + ".checkpoints"),
            interval=checkpoint_seconds,
            clock_ms=clock_ms,
        )
        self._journal = HeadJournal()
        self._opened = False

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
        self._ctx.writer.on_commit.append(self._journal.note)
        self._opened = True

    async def close(self) -> None:
        opened, self._opened = self._opened, False
        try:
            if opened:
                await self._history.close()
        finally:
            await self._ctx.close()

    async def head_watch(self) -> HeadWatch:
        return SqliteHeadWatch(self._journal)

    async def hold_lease(self, job: str) -> bool:
        # One server per database file (the server lock): it does every job.
        return self._opened

    async def ping(self) -> None:
        async with self._ctx.read("ping") as conn:
            await conn.execute_fetchall("SELECT epoch FROM store_epoch")

    # ----------------------------------------------------------------- log

    async def apply(self, op: Operation) -> AppendResult:
        return await self._log.apply(op)

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
