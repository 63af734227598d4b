"""The aiosqlite implementation of the store contract, composed of one part per concern.

:class:`SqliteStore` owns a :class:`~chatd.store.sqlite.context.SqliteContext` (connections,
the single writer, data keys, clock) and hands it to each part — :mod:`.log`, :mod:`.users`,
:mod:`.tokens`, :mod:`.login_attempts`, :mod:`.live_sessions`, :mod:`.inbox`, :mod:`.keys`,
:mod:`.attachments`, :mod:`.audit`, :mod:`.heads`, :mod:`.history` (the epoch and the
checkpoints), :mod:`.verify` — then forwards each contract
method to the part that owns it.  Writes go through the single
:class:`~chatd.store.sqlite.writer.GroupCommitWriter`; reads use a small pool of read
connections (WAL lets them read while the writer commits), each read in one named read
transaction so its queries see one snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from chatd.core.audit import AdminAction, AuditEntry, AuditQuery
from chatd.core.checkpoint_audit import CheckpointState, Departure
from chatd.core.checkpoints import Checkpoint
from chatd.core.clock import wall_clock_ms
from chatd.core.conversations import Operation
from chatd.core.errors import DatabaseDamaged
from chatd.core.events import Event
from chatd.core.login_throttle import Admission, ThrottleLimits
from chatd.core.records import (
    AppendResult,
    AttachmentAccess,
    AttachmentInfo,
    AttachmentKey,
    ChainView,
    ConversationHead,
    EventPage,
    InboxRow,
    Interval,
    LiveSession,
    NewAttachment,
    NewUser,
    ReadState,
    SessionToken,
    User,
    VerifyProblem,
    VerifyReport,
)
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
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
from chatd.store.sqlite.users import SqliteUsers
from chatd.store.sqlite.verify import verify_txn


class SqliteStore(Store):
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

    # ----------------------------------------------------------------- lifecycle, epoch

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

    @property
    def epoch(self) -> str:
        return self._history.epoch

    async def declare_new_epoch(self, *, audit: AdminAction | None = None) -> str:
        return await self._history.declare_new_epoch(audit, rewind=False)

    # ----------------------------------------------------------------- checkpoints

    @property
    def checkpoint_log_path(self) -> Path:
        return self._history.checkpoints.log.path

    def checkpoint_state(self) -> CheckpointState:
        return self._history.state()

    async def checkpoint_departures(self) -> list[Departure]:
        return await self._history.departures()

    async def take_checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        return await self._history.take(force=force)

    async def wait_for_checkpoint(self, n: int) -> Checkpoint:
        return await self._history.wait_for(n)

    async def declare_rewind(self, *, audit: AdminAction | None = None) -> Checkpoint:
        await self._history.declare_new_epoch(audit, rewind=True)
        return await self._history.last_rewind()

    # ----------------------------------------------------------------- log

    async def apply(self, op: Operation) -> AppendResult:
        return await self._log.apply(op)

    async def current_members(self, conv_id: int) -> frozenset[int]:
        return await self._log.current_members(conv_id)

    async def intervals(self, user_id: int, conv_id: int) -> tuple[Interval, ...]:
        return await self._log.intervals(user_id, conv_id)

    async def fellow_members(self, user_id: int, others: Sequence[int]) -> frozenset[int]:
        return await self._log.fellow_members(user_id, others)

    async def visible_window(self, user_id: int, conv_id: int) -> EventPage:
        return await self._log.visible_window(user_id, conv_id)

    async def events_after(
        self, user_id: int, conv_id: int, after_seq: int, limit: int
    ) -> EventPage:
        return await self._log.events_after(user_id, conv_id, after_seq, limit)

    async def events_before(
        self, user_id: int, conv_id: int, before_seq: int, limit: int
    ) -> EventPage:
        return await self._log.events_before(user_id, conv_id, before_seq, limit)

    async def conversation_heads(self, user_id: int) -> list[ConversationHead]:
        return await self._log.conversation_heads(user_id)

    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]:
        return await self._log.audience(conv_id, first_seq, last_seq)

    async def chain_views(
        self, user_id: int, positions: Sequence[tuple[int, int]]
    ) -> list[ChainView]:
        async with self._ctx.read("read_chain_views") as conn:
            return await chain_views_txn(conn, user_id, positions)

    async def export_events(
        self, after: tuple[int, int] = (0, 0), limit: int = 1000
    ) -> list[Event]:
        return await self._log.export_events(after, limit)

    # ----------------------------------------------------------------- accounts, tokens

    async def create_user(self, new: NewUser, *, audit: AdminAction | None = None) -> User:
        return await self._users.create_user(new, audit=audit)

    async def get_user(self, user_id: int) -> User:
        return await self._users.get_user(user_id)

    async def find_user_by_login(self, login: str) -> User | None:
        return await self._users.find_user_by_login(login)

    async def list_users(self) -> list[User]:
        return await self._users.list_users()

    async def set_user_disabled(
        self, user_id: int, disabled: bool, *, audit: AdminAction | None = None
    ) -> User:
        return await self._users.set_user_disabled(user_id, disabled, audit=audit)

    async def set_user_language(self, user_id: int, language: str | None) -> User:
        return await self._users.set_user_language(user_id, language)

    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User:
        return await self._users.set_terms_accepted(user_id, terms_version)

    async def change_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        expected_hash: str,
        keep_token: bytes,
        now_ms: int,
    ) -> list[bytes]:
        return await self._users.change_password(
            user_id,
            password_hash,
            expected_hash=expected_hash,
            keep_token=keep_token,
            now_ms=now_ms,
        )

    async def reset_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        now_ms: int,
        audit: AdminAction | None = None,
    ) -> int:
        return await self._users.reset_password(user_id, password_hash, now_ms=now_ms, audit=audit)

    async def create_session_token(
        self, token: SessionToken, *, password_hash: str | None = None
    ) -> None:
        await self._tokens.create_session_token(token, password_hash=password_hash)

    async def find_session_token(self, token_hash: bytes) -> SessionToken | None:
        return await self._tokens.find_session_token(token_hash)

    async def revoke_session_token(self, token_hash: bytes, revoked_at: int) -> bool:
        return await self._tokens.revoke_session_token(token_hash, revoked_at)

    async def revoke_user_tokens(self, user_id: int, revoked_at: int) -> int:
        return await self._tokens.revoke_user_tokens(user_id, revoked_at)

    async def list_session_tokens(self, user_id: int, now_ms: int) -> list[SessionToken]:
        return await self._tokens.list_session_tokens(user_id, now_ms)

    async def revoke_other_session_tokens(
        self, user_id: int, keep: bytes, revoked_at: int
    ) -> list[bytes]:
        return await self._tokens.revoke_other_session_tokens(user_id, keep, revoked_at)

    # ----------------------------------------------------------------- live sessions

    async def open_live_session(self, session: LiveSession, *, cap: int, stale_before: int) -> bool:
        return await self._live.open_live_session(session, cap=cap, stale_before=stale_before)

    async def close_live_sessions(self, ids: Sequence[str]) -> None:
        await self._live.close_live_sessions(ids)

    async def refresh_live_sessions(self, node: str, now_ms: int) -> None:
        await self._live.refresh_live_sessions(node, now_ms)

    async def end_node_sessions(self, node: str) -> None:
        await self._live.end_node_sessions(node)

    async def live_session_counts(self, user_id: int, stale_before: int) -> dict[bytes, int]:
        return await self._live.live_session_counts(user_id, stale_before)

    async def invalid_session_tokens(
        self, token_hashes: Sequence[bytes], now_ms: int
    ) -> set[bytes]:
        return await self._tokens.invalid_session_tokens(token_hashes, now_ms)

    async def purge_session_tokens(self, expired_before: int) -> int:
        return await self._tokens.purge_session_tokens(expired_before)

    # ----------------------------------------------------------------- login attempts

    async def begin_login_attempt(
        self, login: str, address: str, limits: ThrottleLimits, now_ms: int
    ) -> Admission:
        return await self._attempts.begin_login_attempt(login, address, limits, now_ms)

    async def end_login_attempt(self, attempt_id: int, *, succeeded: bool, now_ms: int) -> None:
        await self._attempts.end_login_attempt(attempt_id, succeeded=succeeded, now_ms=now_ms)

    # ----------------------------------------------------------------- read state, inbox

    async def mark_read(self, user_id: int, conv_id: int, seq: int) -> ReadState:
        return await self._inbox.mark_read(user_id, conv_id, seq)

    async def inbox(self, user_id: int) -> list[InboxRow]:
        return await self._inbox.inbox(user_id)

    # ----------------------------------------------------------------- keys, retention, audit

    async def rewrap_data_keys(self, ring: KeyRing, *, audit: AdminAction | None = None) -> int:
        count = await self._keys.rewrap_data_keys(ring, audit=audit)
        await self._history.rotated(ring)
        return count

    async def kek_ids_in_use(self) -> set[str]:
        return await self._keys.kek_ids_in_use()

    async def row_mac_kek_ids(self) -> set[str]:
        return await self._keys.row_mac_kek_ids()

    async def expired_conversations(self, last_event_before_ms: int) -> list[int]:
        return await self._keys.expired_conversations(last_event_before_ms)

    async def shred_conversation(
        self, conv_id: int, *, audit: AdminAction | None = None
    ) -> list[int]:
        return await self._keys.shred_conversation(conv_id, audit=audit)

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

    # ----------------------------------------------------------------- admin audit log

    async def append_admin_action(self, action: AdminAction) -> AuditEntry:
        return await self._audit.append_admin_action(action)

    async def admin_actions(self, query: AuditQuery) -> list[AuditEntry]:
        return await self._audit.admin_actions(query)

    # ----------------------------------------------------------------- attachment rows

    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo:
        return await self._attachments.record_attachment(new)

    async def attachment_for_user(
        self, user_id: int, attachment_id: int, *, thumbnail: bool = False
    ) -> AttachmentAccess:
        return await self._attachments.attachment_for_user(
            user_id, attachment_id, thumbnail=thumbnail
        )

    async def expired_attachments(self, now_ms: int, limit: int = 1000) -> list[int]:
        return await self._attachments.expired_attachments(now_ms, limit)

    async def discard_attachments(self, attachment_ids: Sequence[int], now_ms: int) -> list[int]:
        return await self._attachments.discard_attachments(attachment_ids, now_ms)

    async def attachment_keys(self, after: int = 0, limit: int = 200) -> list[AttachmentKey]:
        return await self._attachments.attachment_keys(after, limit)

    async def live_attachments(self, attachment_ids: Sequence[int]) -> set[int]:
        return await self._attachments.live_attachments(attachment_ids)
