"""The store contract: the only code that touches the database implements this.

Like mautrix-python's ``crypto/store/abstract.py``: one abstract class whose docstrings state
the guarantees, one contract test-suite (``tests/store/test_contract_*.py``) parametrised over
every backend.  A PostgreSQL backend joins by implementing this class and adding one fixture
parameter in ``tests/store/conftest.py``.

Guarantees every backend gives:

* **Ack means durable.** A mutating coroutine returns only after its transaction has committed
  to stable storage.  Concurrent mutations may be committed together (group commit).
* **Dense seqs.** A conversation's events are numbered 1, 2, 3 … with no gap and no duplicate,
  whatever the concurrency.
* **Rules are atomic.** Conversation operations are decided by
  :func:`chatd.core.conversations.decide` against the committed state, under the write lock,
  so no interleaving can break them.
* **Idempotency.** A conversation operation carrying a ``(sender, client_msg_id)`` already seen
  for that conversation (for a creation: for that sender) appends nothing and returns the
  original seqs with ``duplicate=True``.  Failed operations record nothing.
* **Visibility in the query.** Every read for a user is filtered by that user's membership
  intervals in the backend's query, and by the visible window; reaching past the window yields
  ``archived=True``, never a silent truncation.
* **Nothing in clear.** Payloads, conversation names and user profiles are sealed before they
  reach the database.
* **Attachments are claimed with their message.** A message referring to attachment ids is
  appended only if every one exists, was uploaded by the sender, is carried by no other message
  and has not expired; the references are set in the same transaction as the append, and the
  stored payload holds each attachment's description instead of its id.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from chatd.attachments.blobstore import BlobStore
from chatd.core.conversations import Operation
from chatd.core.records import (
    AppendResult,
    AttachmentAccess,
    AttachmentInfo,
    ConversationHead,
    EventPage,
    InboxRow,
    Interval,
    NewAttachment,
    NewUser,
    ReadState,
    SessionToken,
    User,
    VerifyReport,
)
from chatd.crypto.keyring import KeyRing


class Store(abc.ABC):
    """Abstract store.  Use as ``async with store:`` or call :meth:`open` / :meth:`close`."""

    window_size: int  # CHATD_VISIBLE_WINDOW: messages in a user's visible window

    # ----------------------------------------------------------------- lifecycle

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, bring the schema up to date, start the writer."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes, then release connections.  Idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- users

    @abc.abstractmethod
    async def create_user(self, new: NewUser) -> User:
        """Create a user; :class:`~chatd.core.errors.LoginTakenError` if the login exists
        (logins compare case-insensitively)."""

    @abc.abstractmethod
    async def get_user(self, user_id: int) -> User:
        """The user, or :class:`~chatd.core.errors.UserNotFound`."""

    @abc.abstractmethod
    async def find_user_by_login(self, login: str) -> User | None:
        """The user with this login (case-insensitive), or None."""

    @abc.abstractmethod
    async def list_users(self) -> list[User]:
        """Every user, by id."""

    @abc.abstractmethod
    async def set_user_disabled(self, user_id: int, disabled: bool) -> User:
        """Disable or re-enable an account (never deleted: the log names its users)."""

    @abc.abstractmethod
    async def set_user_language(self, user_id: int, language: str | None) -> User:
        """Record the language the person chose (``"fr"``, ``"en"``), or forget it (None:
        their client's language applies, else the server's default).  UserNotFound if no
        such user; the caller validates the value (the schema refuses any other)."""

    @abc.abstractmethod
    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User:
        """Record that the user accepted this version of the terms of use."""

    @abc.abstractmethod
    async def change_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        expected_hash: str,
        keep_token: bytes,
        now_ms: int,
    ) -> list[bytes]:
        """The user chose a new password: in one transaction, store ``password_hash``, clear
        ``must_change_password``, and revoke every live token of the user except
        ``keep_token`` (the session that changed it stays valid).  Returns the digests of
        the tokens revoked, for the caller to close their live connections.

        Compare-and-set: only if the stored hash is still ``expected_hash`` (the one the old
        password was checked against); otherwise — the password changed or was reset
        meanwhile — nothing changes and :class:`~chatd.core.errors.ConflictError` is raised.
        :class:`~chatd.core.errors.UserNotFound` for an unknown user."""

    @abc.abstractmethod
    async def reset_password(self, user_id: int, password_hash: str, *, now_ms: int) -> int:
        """An administrator set a one-time password: in one transaction, store
        ``password_hash``, set ``must_change_password``, and revoke every live token of the
        user.  Returns how many tokens were revoked.  :class:`~chatd.core.errors.UserNotFound`
        for an unknown user."""

    # ----------------------------------------------------------------- conversations

    @abc.abstractmethod
    async def apply(self, op: Operation) -> AppendResult:
        """Decide ``op`` with the conversation rules and append its events durably.

        Raises the rules' :class:`~chatd.core.errors.ClientError` (nothing is then recorded).
        A message's attachment ids are claimed atomically with the append (see the module
        docstring); the errors are ``attachment_not_found`` (unknown, discarded, or uploaded
        by someone else), ``attachment_already_sent`` and ``attachment_expired``.  The stored
        and returned payload's ``attachments`` is the list of
        :meth:`~chatd.core.records.AttachmentInfo.message_ref` maps, in the order given.
        """

    @abc.abstractmethod
    async def current_members(self, conv_id: int) -> frozenset[int]:
        """Users who are members now (for fan-out)."""

    @abc.abstractmethod
    async def intervals(self, user_id: int, conv_id: int) -> tuple[Interval, ...]:
        """The user's membership intervals in the conversation, oldest first."""

    @abc.abstractmethod
    async def visible_window(self, user_id: int, conv_id: int) -> EventPage:
        """The user's window: their ``window_size`` (W) most recent visible messages and
        every visible event after the (W+1)-th most recent visible message, which is then
        archived (``archived=True``).  With W or fewer visible messages the window starts at
        the user's first visible event and nothing is archived.
        :class:`~chatd.core.errors.ConversationNotFound` if the user never was a member."""

    @abc.abstractmethod
    async def events_after(
        self, user_id: int, conv_id: int, after_seq: int, limit: int
    ) -> EventPage:
        """Visible events with seq > ``after_seq``, oldest first, at most ``limit``.

        If visible events between ``after_seq`` and the window are archived, the page is
        ``archived=True`` and starts at the window instead (the resume rule)."""

    @abc.abstractmethod
    async def events_before(
        self, user_id: int, conv_id: int, before_seq: int, limit: int
    ) -> EventPage:
        """Visible events in the window with seq < ``before_seq``, in seq order, the
        ``limit`` closest to ``before_seq``.  ``archived`` is True when the page reaches
        the window's start and older visible events exist."""

    @abc.abstractmethod
    async def conversation_heads(self, user_id: int) -> list[ConversationHead]:
        """For every conversation the user is or was in: the last event they may see."""

    # ----------------------------------------------------------------- keys and retention

    @abc.abstractmethod
    async def rewrap_data_keys(self, ring: KeyRing) -> int:
        """Re-wrap every live data key under ``ring``'s active KEK (no event re-encrypted);
        the store uses ``ring`` from then on.  Returns the number of keys re-wrapped."""

    @abc.abstractmethod
    async def kek_ids_in_use(self) -> set[str]:
        """The KEK ids that wrap at least one live data key."""

    @abc.abstractmethod
    async def expired_conversations(self, last_event_before_ms: int) -> list[int]:
        """Conversations not yet shredded whose last event is older than the cutoff."""

    @abc.abstractmethod
    async def shred_conversation(self, conv_id: int) -> None:
        """Destroy the conversation's data keys: every event of it becomes unopenable, its
        log and hash chain stay.  Later operations on it raise
        :class:`~chatd.core.errors.ConversationShreddedError`."""

    @abc.abstractmethod
    async def verify(self, conv_ids: Sequence[int] | None = None) -> VerifyReport:
        """Walk every hash chain and open every seal (of live keys); report, per broken
        conversation, the first broken seq.

        Without ``conv_ids``, also every attachment: its key, sealed name and thumbnail, and
        its file chunk by chunk (a problem names the attachment and the first bad chunk; a
        missing file is a problem).  Files without a row, older than an hour, and files of
        shredded attachments are removed and reported in ``warnings``."""

    # ---- sessions, read markers (gateway)

    @abc.abstractmethod
    async def create_session_token(self, token: SessionToken) -> None:
        """Record a login token.  Only its SHA-256 digest is given, and only that is kept."""

    @abc.abstractmethod
    async def find_session_token(self, token_hash: bytes) -> SessionToken | None:
        """The token with this digest (revoked and expired ones included), or None."""

    @abc.abstractmethod
    async def revoke_session_token(self, token_hash: bytes, revoked_at: int) -> bool:
        """Revoke a token; True if it was live (not revoked yet).  Idempotent."""

    @abc.abstractmethod
    async def revoke_user_tokens(self, user_id: int, revoked_at: int) -> int:
        """Revoke every live token of the user (account disabled); how many were revoked."""

    @abc.abstractmethod
    async def invalid_session_tokens(
        self, token_hashes: Sequence[bytes], now_ms: int
    ) -> set[bytes]:
        """Which of these token digests no longer authorise anything (unknown, revoked,
        expired, or the account is disabled) — one cheap read for all live sessions."""

    @abc.abstractmethod
    async def purge_session_tokens(self, expired_before: int) -> int:
        """Delete tokens whose expiry is older than the cutoff; how many were deleted."""

    @abc.abstractmethod
    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]:
        """For every seq in ``[first_seq, last_seq]``: the users who may read it (whose
        membership intervals contain it).  That is who a live push goes to: a ``joined``
        event reaches the added user, a ``left`` event the leaver, nothing after it."""

    @abc.abstractmethod
    async def mark_read(self, user_id: int, conv_id: int, seq: int) -> ReadState:
        """Move the user's read marker to ``seq``, clamped to the last seq they may see; a
        marker never moves back (an older ``seq`` leaves it where it is).  Returns the
        marker and the unread count after it.  :class:`~chatd.core.errors.ConversationNotFound`
        if the user never was a member."""

    @abc.abstractmethod
    async def inbox(self, user_id: int) -> list[InboxRow]:
        """Every conversation the user is or was in, most recent activity first, as they may
        see it: name, members and last event as of their last visible seq (their leave, for
        a former member), read marker and unread count (visible messages after the marker
        not sent by the user, capped at ``window_size``)."""

    # ---- attachments

    blobs: BlobStore  # the encrypted attachment files (written by the gateway, then recorded)

    @abc.abstractmethod
    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo:
        """Record an upload whose file ``new.id`` is already complete in :attr:`blobs`.

        Wraps ``new.dek`` with the active KEK and seals the name and thumbnail with it.  The
        attachment waits, unsent, until a message refers to it or ``new.ttl_ms`` have passed.
        :class:`~chatd.core.errors.UserNotFound` for an unknown uploader,
        :class:`~chatd.core.errors.ConflictError` if the id was ever used."""

    @abc.abstractmethod
    async def attachment_for_user(
        self, user_id: int, attachment_id: int, *, thumbnail: bool = False
    ) -> AttachmentAccess:
        """The attachment, its key, and its thumbnail if asked, if ``user_id`` may see it.

        A sent attachment: visibility is checked in the query — the user's membership
        intervals must contain its message's seq — and the message must be inside the user's
        window (else :class:`~chatd.core.errors.AttachmentArchived`).  An unsent one: only its
        uploader, until it expires.  Anything else (unknown id, discarded, not visible,
        shredded) raises the same :class:`~chatd.core.errors.AttachmentNotFound`.
        :class:`~chatd.core.errors.ThumbnailNotFound` if a thumbnail is asked and there is none."""

    @abc.abstractmethod
    async def expired_attachments(self, now_ms: int, limit: int = 1000) -> list[int]:
        """Unsent attachments whose time to wait for a message is over at ``now_ms``."""

    @abc.abstractmethod
    async def discard_attachments(self, attachment_ids: Sequence[int], now_ms: int) -> list[int]:
        """Delete those of ``attachment_ids`` still unsent and expired at ``now_ms``: their
        keys are destroyed and their rows deleted in one transaction, then (after the commit)
        their files are removed.  Returns the ids discarded."""

    async def sweep_attachments(self, now_ms: int) -> list[int]:
        """Discard every attachment expired at ``now_ms`` (the server runs this periodically)."""
        swept: list[int] = []
        while batch := await self.expired_attachments(now_ms):
            gone = await self.discard_attachments(batch, now_ms)
            swept.extend(gone)
            if not gone:
                break
        return swept
