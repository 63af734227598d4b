"""What :class:`~chatd.store.composed.ComposedStore` calls on each part of a backend.

A backend's store is composed of one part per concern (the log, the users, the tokens, the
keys, the attachment rows, the history …); :class:`~chatd.store.composed.ComposedStore`
forwards the contract's methods to them.  Each protocol here is what that forwarding needs of
one part, and no more, so that ``mypy --strict`` checks every backend's parts against the
shared forwarding: a part whose signature drifts fails the type check, not a test.

Where a part is exactly one concern of the contract, the contract's own protocol types it
instead (:class:`~chatd.store.contract.LoginAttempts`,
:class:`~chatd.store.contract.LiveSessionStore`, :class:`~chatd.store.contract.InboxStore`,
:class:`~chatd.store.contract.AdminAuditStore`).  What a backend calls on a part itself
(opening it, the writer, verify's transaction) is typed by that backend with the part's own
class.  No defaults here: the forwarding always passes every argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chatd.core.audit import AdminAction
from chatd.core.checkpoint_audit import CheckpointState, Departure
from chatd.core.checkpoints import Checkpoint
from chatd.core.events import Event
from chatd.core.records import (
    AttachmentAccess,
    AttachmentInfo,
    AttachmentKey,
    ConversationHead,
    EventPage,
    Interval,
    NewAttachment,
    NewUser,
    SessionToken,
    User,
)
from chatd.crypto.keyring import KeyRing
from chatd.store.checkpointer import Checkpointer


class LogPart(Protocol):
    """The reads of the conversation log (appends go through each backend's writer)."""

    async def current_members(self, conv_id: int) -> frozenset[int]: ...

    async def intervals(self, user_id: int, conv_id: int) -> tuple[Interval, ...]: ...

    async def fellow_members(self, user_id: int, others: Sequence[int]) -> frozenset[int]: ...

    async def visible_window(self, user_id: int, conv_id: int) -> EventPage: ...

    async def events_after(
        self, user_id: int, conv_id: int, after_seq: int, limit: int
    ) -> EventPage: ...

    async def events_before(
        self, user_id: int, conv_id: int, before_seq: int, limit: int
    ) -> EventPage: ...

    async def conversation_heads(self, user_id: int) -> list[ConversationHead]: ...

    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]: ...

    async def export_events(self, after: tuple[int, int], limit: int) -> list[Event]: ...


class UserPart(Protocol):
    """Accounts: creation, profile changes, passwords (the directory is opened by the
    backend's :meth:`~chatd.store.contract.Store.open`)."""

    async def create_user(self, new: NewUser, *, audit: AdminAction | None) -> User: ...

    async def get_user(self, user_id: int) -> User: ...

    async def find_user_by_login(self, login: str) -> User | None: ...

    async def list_users(self) -> list[User]: ...

    async def set_user_disabled(
        self, user_id: int, disabled: bool, *, audit: AdminAction | None
    ) -> User: ...

    async def set_user_language(self, user_id: int, language: str | None) -> User: ...

    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User: ...

    async def change_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        expected_hash: str,
        keep_token: bytes,
        now_ms: int,
    ) -> list[bytes]: ...

    async def reset_password(
        self, user_id: int, password_hash: str, *, now_ms: int, audit: AdminAction | None
    ) -> int: ...


class TokenPart(Protocol):
    """Login tokens: issued, found, revoked, purged."""

    async def create_session_token(
        self, token: SessionToken, *, password_hash: str | None = None
    ) -> None: ...

    async def find_session_token(self, token_hash: bytes) -> SessionToken | None: ...

    async def revoke_session_token(self, token_hash: bytes, revoked_at: int) -> bool: ...

    async def revoke_user_tokens(self, user_id: int, revoked_at: int) -> int: ...

    async def list_session_tokens(self, user_id: int, now_ms: int) -> list[SessionToken]: ...

    async def revoke_other_session_tokens(
        self, user_id: int, keep: bytes, revoked_at: int
    ) -> list[bytes]: ...

    async def invalid_session_tokens(
        self, token_hashes: Sequence[bytes], now_ms: int
    ) -> set[bytes]: ...

    async def purge_session_tokens(self, expired_before: int) -> int: ...


class KeyPart(Protocol):
    """Data keys: rotation, the KEKs in use, retention and shredding (verify is the
    backend's: it reads in the backend's own transaction)."""

    async def rewrap_data_keys(self, ring: KeyRing, *, audit: AdminAction | None) -> int: ...

    async def kek_ids_in_use(self) -> set[str]: ...

    async def row_mac_kek_ids(self) -> set[str]: ...

    async def expired_conversations(self, last_event_before_ms: int) -> list[int]: ...

    async def shred_conversation(self, conv_id: int, *, audit: AdminAction | None) -> list[int]: ...


class AttachmentPart(Protocol):
    """Attachment rows (the sweep is the contract's loop over these unless a backend has
    its own)."""

    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo: ...

    async def attachment_for_user(
        self, user_id: int, attachment_id: int, *, thumbnail: bool
    ) -> AttachmentAccess: ...

    async def expired_attachments(self, now_ms: int, limit: int) -> list[int]: ...

    async def discard_attachments(
        self, attachment_ids: Sequence[int], now_ms: int
    ) -> list[int]: ...

    async def attachment_keys(self, after: int, limit: int) -> list[AttachmentKey]: ...

    async def live_attachments(self, attachment_ids: Sequence[int]) -> set[int]: ...


class HistoryPart(Protocol):
    """The database's epoch and its checkpoints (opening, starting and closing them, and
    verify's anchor, are the backend's)."""

    checkpoints: Checkpointer

    @property
    def epoch(self) -> str: ...

    async def declare_new_epoch(self, audit: AdminAction | None, *, rewind: bool) -> str: ...

    async def rotated(self, ring: KeyRing) -> None: ...

    def state(self) -> CheckpointState: ...

    async def departures(self) -> list[Departure]: ...

    async def take(self, *, force: bool) -> Checkpoint | None: ...

    async def wait_for(self, n: int) -> Checkpoint: ...

    async def last_rewind(self) -> Checkpoint: ...
