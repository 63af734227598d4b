"""The forwarding that every backend's store shares: each contract method to its part.

A backend's store (:class:`~chatd.store.sqlite.SqliteStore`,
:class:`~chatd.store.postgres.store.PostgresStore`) is composed of one part per concern, and
most contract methods only hand their arguments to the part that owns them.  That forwarding
is the same on every backend, so it is written once here; a backend subclasses
:class:`ComposedStore`, sets every part in its ``__init__`` and keeps only what really
differs: its context, opening and closing, the writer (``apply``), reads in its own
transaction (``ping``, ``chain_views``, ``verify``), the leases, and any method it does
differently (PostgreSQL's ``sweep_attachments``).  Each part is typed by a protocol of
:mod:`chatd.store.parts`, so ``mypy --strict`` checks every backend's parts against this
forwarding.

A method that does more than forward (a backend that wraps errors, adds a step or passes
other arguments) belongs to the backend, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chatd.core.audit import AdminAction, AuditEntry, AuditQuery
from chatd.core.checkpoint_audit import CheckpointState, Departure
from chatd.core.checkpoints import Checkpoint
from chatd.core.events import Event
from chatd.core.login_throttle import Admission, ThrottleLimits
from chatd.core.records import (
    AttachmentAccess,
    AttachmentInfo,
    AttachmentKey,
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
)
from chatd.core.upload_quota import Reservation, UploadLimits
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import (
    AdminAuditStore,
    InboxStore,
    LiveSessionStore,
    LoginAttempts,
    Store,
    UploadBudgets,
)
from chatd.store.parts import (
    AttachmentPart,
    HistoryPart,
    KeyPart,
    LogPart,
    TokenPart,
    UserPart,
)


class ComposedStore(Store):
    """A store made of parts: forwards each contract method to the part that owns it.

    Not usable alone: a backend sets every part below in its ``__init__`` and implements
    the rest of :class:`~chatd.store.contract.Store` (``open``, ``close``, ``ping``,
    ``apply``, ``chain_views``, ``verify``, ``hold_lease``).  A backend that calls more on
    a part than its protocol says narrows the part's type in its own class body.
    """

    _log: LogPart
    _users: UserPart
    _tokens: TokenPart
    _attempts: LoginAttempts
    _uploads: UploadBudgets
    _live: LiveSessionStore
    _inbox: InboxStore
    _keys: KeyPart
    _attachments: AttachmentPart
    _audit: AdminAuditStore
    _history: HistoryPart

    # ----------------------------------------------------------------- epoch

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

    # ----------------------------------------------------------------- upload quota

    async def admit_upload(
        self, user_id: int, declared_bytes: int | None, limits: UploadLimits, now_ms: int
    ) -> Reservation:
        return await self._uploads.admit_upload(user_id, declared_bytes, limits, now_ms)

    async def settle_upload(
        self, reservation: Reservation, received_bytes: int, now_ms: int
    ) -> None:
        await self._uploads.settle_upload(reservation, received_bytes, now_ms)

    # ----------------------------------------------------------------- read state, inbox

    async def mark_read(self, user_id: int, conv_id: int, seq: int) -> ReadState:
        return await self._inbox.mark_read(user_id, conv_id, seq)

    async def inbox(self, user_id: int) -> list[InboxRow]:
        return await self._inbox.inbox(user_id)

    # ----------------------------------------------------------------- keys, retention

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
