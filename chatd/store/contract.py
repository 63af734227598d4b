"""The store contract: the only code that touches the database implements it.

One :class:`typing.Protocol` per concern — the log (:class:`LogStore`), accounts and login
tokens (:class:`AccountStore`), the login throttle's attempts (:class:`LoginAttempts`), the
upload quota's buckets (:class:`UploadBudgets`), the live connections of every node
(:class:`LiveSessionStore`), read state and the inbox
(:class:`InboxStore`), keys and retention (:class:`KeyStore`), attachment rows
(:class:`AttachmentRows`), the administrators' audit log (:class:`AdminAuditStore`) — and
:class:`Store`,
all of them plus the lifecycle and the store's epoch.  A consumer types against the narrowest
protocol it needs (the inbox service against :class:`InboxStore`), so what it may do with the
database reads from its signature.  Each protocol's docstring states the guarantees that
concern gives; one contract test-suite (``tests/store/test_contract_*.py``) checks them on
every backend.  A backend joins by implementing :class:`Store` and adding one fixture in
``tests/store/conftest.py``.

Guarantees every backend gives, whatever the concern:

* **Ack means durable.** A mutating coroutine returns only after its transaction has committed
  to stable storage.  Concurrent mutations may be committed together (group commit).
* **Nothing in clear.** Payloads, conversation names, user profiles, attachment names and
  thumbnails are sealed before they reach the database.
* **Administrators' actions are recorded with them.** A mutating method that takes
  ``audit`` (an :class:`~chatd.core.audit.AdminAction`) appends it to the audit log in the
  same transaction as the change: both commit, or neither (see :class:`AdminAuditStore`).
* **Rows only.** The store never touches a file but its database: attachment files belong to
  the attachment service (:mod:`chatd.services.attachments`), which writes a file before the
  store records its row and removes files after the store reports which rows went.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from chatd.core.audit import AdminAction, AuditEntry, AuditQuery
from chatd.core.checkpoint_audit import CheckpointState, Departure
from chatd.core.checkpoints import Checkpoint
from chatd.core.conversations import Operation
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
    VerifyReport,
)
from chatd.core.upload_quota import Reservation, UploadLimits
from chatd.crypto.keyring import KeyRing
from chatd.store.head_feed import HeadFeed


class LogStore(HeadFeed, Protocol):
    """The conversation log: appends decided by the rules, and reads filtered by visibility.

    * **Dense seqs.** A conversation's events are numbered 1, 2, 3 … with no gap and no
      duplicate, whatever the concurrency.
    * **Rules are atomic.** Conversation operations are decided by
      :func:`chatd.core.conversations.decide` against the committed state, under the write
      lock, so no interleaving can break them.
    * **Idempotency.** A conversation operation carrying a ``(sender, client_msg_id)`` already
      seen for that conversation (for a creation: for that sender) appends nothing and returns
      the original seqs with ``duplicate=True``.  Failed operations record nothing.
    * **Visibility in the query.** Every read for a user is filtered by that user's membership
      intervals in the backend's query, and by the visible window; reaching past the window
      yields ``archived=True``, never a silent truncation.
    * **Attachments are claimed with their message.** A message referring to attachment ids is
      appended only if every one exists, was uploaded by the sender, is carried by no other
      message and has not expired (:mod:`chatd.core.claims`); the references are set in the
      same transaction as the append, and the stored payload holds each attachment's
      description instead of its id.

    **Single appender.** Appends are planned by :class:`chatd.store.planner.BatchPlanner`,
    which caches each conversation's head (last seq, last hash, members, sealers) between
    batches instead of reading it again.  That cache is right only if nothing else appends to
    the database meanwhile.  So a backend either has **exactly one appender process per
    database** — SQLite: the ``chatd serve`` server lock (:mod:`chatd.store.sqlite.lock`) keeps
    a second server out, and the database refuses an append to a conversation another process
    shredded — or it **re-reads the conversation's head under a row lock in the same
    transaction** as the append (what a PostgreSQL backend behind several nodes must do, with
    ``SELECT … FOR UPDATE`` on the conversation, or no cache at all).

    **Heads that moved** (:class:`~chatd.store.head_feed.HeadFeed`): a watch names every
    conversation whose head moved since its previous look, whichever node appended.
    """

    window_size: int  # CHATD_VISIBLE_WINDOW: messages in a user's visible window

    async def apply(self, op: Operation) -> AppendResult:
        """Decide ``op`` with the conversation rules and append its events durably.

        Raises the rules' :class:`~chatd.core.errors.ClientError` (nothing is then recorded).
        A message's attachment ids are claimed atomically with the append; the errors are
        ``attachment_not_found`` (unknown, discarded, or uploaded by someone else),
        ``attachment_already_sent`` and ``attachment_expired``.  The stored and returned
        payload's ``attachments`` is the list of
        :meth:`~chatd.core.records.AttachmentInfo.message_ref` maps, in the order given.
        """
        ...

    async def current_members(self, conv_id: int) -> frozenset[int]:
        """Users who are members now (for fan-out)."""
        ...

    async def intervals(self, user_id: int, conv_id: int) -> tuple[Interval, ...]:
        """The user's membership intervals in the conversation, oldest first."""
        ...

    async def fellow_members(self, user_id: int, others: Sequence[int]) -> frozenset[int]:
        """Those of ``others`` who share or shared a conversation with ``user_id``: both were
        members of one conversation at some time, not necessarily at the same time (left
        ones count, however long ago; an interval closed by a leave still counts).
        ``user_id`` itself is in the answer if it is in ``others`` and exists.  Ids that name
        nobody are simply not in the answer.  The directory shows a profile only to them."""
        ...

    async def visible_window(self, user_id: int, conv_id: int) -> EventPage:
        """The user's window: their ``window_size`` (W) most recent visible messages and
        every visible event after the (W+1)-th most recent visible message, which is then
        archived (``archived=True``).  With W or fewer visible messages the window starts at
        the user's first visible event and nothing is archived.
        :class:`~chatd.core.errors.ConversationNotFound` if the user never was a member."""
        ...

    async def events_after(
        self, user_id: int, conv_id: int, after_seq: int, limit: int
    ) -> EventPage:
        """Visible events with seq > ``after_seq``, oldest first, at most ``limit``.

        If visible events between ``after_seq`` and the window are archived, the page is
        ``archived=True`` and starts at the window instead (the resume rule)."""
        ...

    async def events_before(
        self, user_id: int, conv_id: int, before_seq: int, limit: int
    ) -> EventPage:
        """Visible events in the window with seq < ``before_seq``, in seq order, the
        ``limit`` closest to ``before_seq``.  ``archived`` is True when the page reaches
        the window's start and older visible events exist."""
        ...

    async def conversation_heads(self, user_id: int) -> list[ConversationHead]:
        """For every conversation the user is or was in: the last event they may see."""
        ...

    async def chain_views(
        self, user_id: int, positions: Sequence[tuple[int, int]]
    ) -> list[ChainView]:
        """For each ``(conv_id, seq)``, in the order given: the chain hash at ``seq`` and the
        head, as far as the user may see (:class:`~chatd.core.records.ChainView`,
        :func:`chatd.core.visibility.chain_view` is the rule).  One read for all of them (a
        ``sync`` asks for every conversation at once); a conversation the user never was in
        answers like one that does not exist."""
        ...

    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]:
        """For every seq in ``[first_seq, last_seq]``: the users who may read it (whose
        membership intervals contain it).  That is who a live push goes to: a ``joined``
        event reaches the added user, a ``left`` event the leaver, nothing after it."""
        ...

    @property
    def epoch(self) -> str:
        """The id of the history the seqs belong to (32 hexadecimal digits; see
        :class:`Store`); valid after opening.  The same across closing and reopening,
        different for every database and after every declared rewind."""
        ...

    async def export_events(
        self, after: tuple[int, int] = (0, 0), limit: int = 1000
    ) -> list[Event]:
        """Every event of every conversation, opened, in ``(conv_id, seq)`` order, strictly
        after the position ``after = (conv_id, seq)``, at most ``limit`` (1 to 1000).

        An operator's read path (``chatd export``, the chaos harness's ground truth): no
        visibility filter.  Events of shredded conversations cannot be opened any more and
        are left out.  Page with the position of the last event returned; an empty page is
        the end."""
        ...


class AccountStore(Protocol):
    """User accounts, passwords and login tokens.

    * **Logins are unique, case-insensitively.**
    * **Only token digests are kept.** A login token is recorded by its SHA-256 digest; the
      token itself never reaches the database.
    * **A password change and the revocations it implies are one transaction.**
    """

    async def create_user(self, new: NewUser, *, audit: AdminAction | None = None) -> User:
        """Create a user; :class:`~chatd.core.errors.LoginTakenError` if the login exists
        (logins compare case-insensitively).  ``audit`` is recorded with the new user's id
        as its target."""
        ...

    async def get_user(self, user_id: int) -> User:
        """The user, or :class:`~chatd.core.errors.UserNotFound`."""
        ...

    async def find_user_by_login(self, login: str) -> User | None:
        """The user with this login (case-insensitive), or None."""
        ...

    async def list_users(self) -> list[User]:
        """Every user, by id."""
        ...

    async def set_user_disabled(
        self, user_id: int, disabled: bool, *, audit: AdminAction | None = None
    ) -> User:
        """Disable or re-enable an account (never deleted: the log names its users)."""
        ...

    async def set_user_language(self, user_id: int, language: str | None) -> User:
        """Record the language the person chose (``"fr"``, ``"en"``), or forget it (None:
        their client's language applies, else the server's default).  UserNotFound if no
        such user; the caller validates the value (the schema refuses any other)."""
        ...

    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User:
        """Record that the user accepted this version of the terms of use."""
        ...

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
        ...

    async def reset_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        now_ms: int,
        audit: AdminAction | None = None,
    ) -> int:
        """An administrator set a one-time password: in one transaction, store
        ``password_hash``, set ``must_change_password``, and revoke every live token of the
        user.  Returns how many tokens were revoked; ``audit`` is recorded with that number
        as its ``sessions_closed`` count.  :class:`~chatd.core.errors.UserNotFound`
        for an unknown user."""
        ...

    async def create_session_token(
        self, token: SessionToken, *, password_hash: str | None = None
    ) -> None:
        """Record a login token.  Only its SHA-256 digest is given, and only that is kept.

        ``password_hash``: the hash a login checked the password against.  The token is then
        recorded only if the account still has that hash and is enabled, in a transaction
        that a password change, a reset or a disabling (which revoke the user's tokens)
        cannot interleave with: else :class:`~chatd.core.errors.InvalidCredentialsError`
        (the password changed during the check) or
        :class:`~chatd.core.errors.UserDisabledError`, and nothing is recorded.  Without
        it (an operator's tool seeding sessions) the token is recorded as given."""
        ...

    async def find_session_token(self, token_hash: bytes) -> SessionToken | None:
        """The token with this digest (revoked and expired ones included), or None."""
        ...

    async def revoke_session_token(self, token_hash: bytes, revoked_at: int) -> bool:
        """Revoke a token; True if it was live (not revoked yet).  Idempotent."""
        ...

    async def revoke_user_tokens(self, user_id: int, revoked_at: int) -> int:
        """Revoke every live token of the user (account disabled); how many were revoked."""
        ...

    async def list_session_tokens(self, user_id: int, now_ms: int) -> list[SessionToken]:
        """The user's live tokens (neither revoked nor expired at ``now_ms``), oldest first,
        with their device and last sighting: what the user lists as their sessions."""
        ...

    async def revoke_other_session_tokens(
        self, user_id: int, keep: bytes, revoked_at: int
    ) -> list[bytes]:
        """Revoke every token of the user not revoked yet but ``keep`` (the session asking;
        expired tokens too, which is harmless); the digests revoked, for the caller to close
        their connections.  Idempotent."""
        ...

    async def invalid_session_tokens(
        self, token_hashes: Sequence[bytes], now_ms: int
    ) -> set[bytes]:
        """Which of these token digests no longer authorise anything (unknown, revoked,
        expired, or the account is disabled) — one cheap read for all live sessions."""
        ...

    async def purge_session_tokens(self, expired_before: int) -> int:
        """Delete tokens whose expiry is older than the cutoff; how many were deleted."""
        ...


class LoginAttempts(Protocol):
    """The login throttle's state: the password attempts that count against its budgets.

    The rule is :mod:`chatd.core.login_throttle` (:class:`~chatd.core.login_throttle.AttemptLedger`
    is its reference); the store makes it hold across tasks, restarts and nodes.

    * **Counted when it starts.** :meth:`begin_login_attempt` decides and records in one
      atomic step: however many attempts race, no budget ever admits more than its limit
      within the window, on one node or on several sharing the store.
    * **Durable and shared.** Attempts survive a restart and are seen by every process on the
      same database.
    * **Nothing typed is kept.** Logins and addresses are stored as keyed hashes (a password
      typed into the login field must not reach the disk).
    """

    async def begin_login_attempt(
        self, login: str, address: str, limits: ThrottleLimits, now_ms: int
    ) -> Admission:
        """Admit a password attempt on ``login`` (normalised by the caller) from ``address``,
        or refuse it: ``Admission(attempt_id)``, the attempt now counting against the login's,
        the address's and the global budgets, or ``Admission(None, budget)`` naming the first
        budget (login, address, global) whose ``limits`` it would exceed; nothing is then
        recorded.  Counted are the attempts started less than ``limits.window_ms`` before
        ``now_ms``, in flight or failed; older ones may be deleted meanwhile."""
        ...

    async def end_login_attempt(self, attempt_id: int, *, succeeded: bool, now_ms: int) -> None:
        """The password of an admitted attempt was checked.  A failure keeps counting until
        its window is over.  A success stops counting, and so do the **finished** failures of
        its login; attempts of that login still in flight keep counting.  An attempt already
        forgotten (its window over) is ignored."""
        ...


class UploadBudgets(Protocol):
    """The upload quota's state: each user's two token buckets (uploads, bytes a minute).

    The rule is :mod:`chatd.core.upload_quota` (:class:`~chatd.core.upload_quota.QuotaLedger`
    is its reference); the store makes it hold across tasks, restarts and nodes.

    * **Counted when it starts.** :meth:`admit_upload` reads the user's buckets, decides and
      writes them back in one atomic step: however many uploads race, on one node or on
      several sharing the store, over any span of ``T`` seconds a user is admitted at most
      ``amount × (1 + T / 60)`` of each budget.
    * **Durable and shared.** The buckets survive a restart and are seen by every process on
      the same database.
    * **User ids only.** A row holds a user id, two levels and a time; rows of users whose
      buckets are full again may be deleted (a full bucket is what a missing row means).
    """

    async def admit_upload(
        self, user_id: int, declared_bytes: int | None, limits: UploadLimits, now_ms: int
    ) -> Reservation:
        """Count one upload of ``user_id`` starting at ``now_ms`` and reserve the bytes it
        declares (None: the largest upload), or raise
        :class:`~chatd.core.errors.RateLimitedError` (``rate_limited``, with the seconds to
        wait) if either bucket is short; nothing is then counted."""
        ...

    async def settle_upload(
        self, reservation: Reservation, received_bytes: int, now_ms: int
    ) -> None:
        """The body of an admitted upload was read: ``received_bytes`` is what it cost (the
        rest of its reservation comes back).  Idempotence is not promised: settle once."""
        ...


class LiveSessionStore(Protocol):
    """The live WebSocket connections of every node: what ``CHATD_SESSIONS_PER_USER`` counts.

    * **The cap holds across nodes.** :meth:`open_live_session` counts the user's live
      connections and records the new one in one step: two nodes never both take the last
      place.
    * **A dead node's connections expire.** Each node refreshes its rows
      (:meth:`refresh_live_sessions`) more often than the staleness cutoff callers pass;
      rows older than the cutoff are neither counted nor kept.
    """

    async def open_live_session(self, session: LiveSession, *, cap: int, stale_before: int) -> bool:
        """Record ``session`` unless its user already has ``cap`` live connections (rows
        seen at or after ``stale_before``; older rows of the user are deleted); True if
        recorded.  Also stamps the token's ``last_seen_at`` with ``session.opened_at``."""
        ...

    async def close_live_sessions(self, ids: Sequence[str]) -> None:
        """Forget these connections (they ended); unknown ids are ignored."""
        ...

    async def refresh_live_sessions(self, node: str, now_ms: int) -> None:
        """The heartbeat of ``node``: its connections and their live tokens were seen at
        ``now_ms``."""
        ...

    async def end_node_sessions(self, node: str) -> None:
        """``node`` stops: forget all its connections."""
        ...

    async def live_session_counts(self, user_id: int, stale_before: int) -> dict[bytes, int]:
        """The user's live connections per token digest (rows seen at or after the cutoff)."""
        ...


class InboxStore(Protocol):
    """Per-user read state and the conversation list.

    * **Visibility in the query.** Unread counts and last events count only what the user may
      see (their membership intervals), as in :class:`LogStore`.
    * **A read marker never moves back**, and never past the last seq the user may see.
    """

    window_size: int

    async def mark_read(self, user_id: int, conv_id: int, seq: int) -> ReadState:
        """Move the user's read marker to ``seq``, clamped to the last seq they may see; a
        marker never moves back (an older ``seq`` leaves it where it is).  Returns the
        marker and the unread count after it.  :class:`~chatd.core.errors.ConversationNotFound`
        if the user never was a member."""
        ...

    async def inbox(self, user_id: int) -> list[InboxRow]:
        """Every conversation the user is or was in, most recent activity first, as they may
        see it: name, members and last event as of their last visible seq (their leave, for
        a former member), read marker and unread count (visible messages after the marker
        not sent by the user, capped at ``window_size``)."""
        ...


class KeyStore(Protocol):
    """Data keys, retention (crypto-shredding) and the row audit.

    * **Shredding is final.** A shredded conversation's data keys (and its attachments') are
      destroyed; its log and hash chain stay, and nothing can be appended to it any more.
    * **Rotation re-wraps, never re-encrypts.**
    """

    async def rewrap_data_keys(self, ring: KeyRing, *, audit: AdminAction | None = None) -> int:
        """Re-wrap every live data key under ``ring``'s active KEK (no event re-encrypted);
        the store uses ``ring`` from then on.  Returns the number of keys re-wrapped; ``audit``
        is recorded with that number as its ``data_keys`` count."""
        ...

    async def kek_ids_in_use(self) -> set[str]:
        """The KEK ids that wrap at least one live data key."""
        ...

    async def row_mac_kek_ids(self) -> set[str]:
        """The KEK ids under which at least one row is authenticated (its MAC; a tag of a
        KEK not in the ring comes back as its hexadecimal).  Rotation re-MACs every row
        whose MAC verifies, so after it only the active KEK and tampered rows' KEKs remain."""
        ...

    async def expired_conversations(self, last_event_before_ms: int) -> list[int]:
        """Conversations not yet shredded whose last event is older than the cutoff."""
        ...

    async def shred_conversation(
        self, conv_id: int, *, audit: AdminAction | None = None
    ) -> list[int]:
        """Destroy the conversation's data keys and its attachments': every event of it
        becomes unopenable, its log and hash chain stay.  Later operations on it raise
        :class:`~chatd.core.errors.ConversationShreddedError`.  Returns the ids of the
        attachments whose keys were destroyed (their files are noise now: the attachment
        service removes them).  ``audit`` is recorded with their number as its
        ``attachments`` count, only if the conversation was not shredded already."""
        ...

    async def verify(
        self, conv_ids: Sequence[int] | None = None, *, checkpoint_log: Path | None = None
    ) -> VerifyReport:
        """The row audit: walk every hash chain and open every seal (of live keys); report,
        per broken conversation, the first broken seq.

        Without ``conv_ids``, also every user profile, every attachment row (its
        reference, its key, its sealed name and thumbnail; ``attachments`` counts the rows
        that pass), the admin audit log's chain (``admin_actions`` counts its records), and
        the checkpoint log (``checkpoint_log``: another copy of it, e.g. one exported off the
        host, instead of the store's own): every record, and that the database extends the
        last one (no chain vanished, none shorter, none forked).
        The files are audited by the attachment service."""
        ...


class CheckpointStore(Protocol):
    """Signed checkpoints of every chain's head, in a log outside the database
    (:mod:`chatd.store.checkpointer`).  The store takes one every few seconds under writes
    and on every clean stop."""

    @property
    def checkpoint_log_path(self) -> Path: ...

    def checkpoint_state(self) -> CheckpointState:
        """The last checkpoint read or taken, and why the log cannot be used, if it cannot
        (missing for a database with history, unreadable, a broken link, a wrong MAC)."""
        ...

    async def checkpoint_departures(self) -> list[Departure]:
        """Where the database does not extend the last checkpoint: ``chatd serve`` refuses
        to start on a database that departs from it."""
        ...

    async def take_checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Take a checkpoint now if a head moved (``force``: even if none did)."""
        ...

    async def wait_for_checkpoint(self, n: int) -> Checkpoint:
        """Checkpoint ``n`` or a later one, once taken (the caller bounds the wait)."""
        ...

    async def declare_rewind(self, *, audit: AdminAction | None = None) -> Checkpoint:
        """The operator restored an older database: declare a new epoch (with ``audit``)
        and append a base of the database as it is, from which later checks start."""
        ...


class AdminAuditStore(Protocol):
    """The administrators' audit log (:mod:`chatd.core.audit`): who did what, to which id,
    when — never content.

    * **Append-only.** Records are numbered 1, 2, 3 … in the order they commit, with no gap;
      none is ever changed or removed (SQLite: triggers refuse UPDATE and DELETE).
    * **Recorded with the change.** The mutating methods that take ``audit`` append it in
      the change's own transaction; :meth:`append_admin_action` is for an action that changes
      nothing in the store (a master key retired from the key file).
    * **Hash-chained, keyed.** Each record's hash covers the previous record's hash and its
      own fields (:func:`chatd.crypto.chain.audit_link_hash`, GENESIS before the first), an
      HMAC under a data key of the log's own that only the key file unwraps (re-wrapped by
      rotation like every data key); :meth:`KeyStore.verify` walks the chain and reports the
      first broken record.
    """

    async def append_admin_action(self, action: AdminAction) -> AuditEntry:
        """Record ``action`` (its target set) after the last record, durably; the entry."""
        ...

    async def admin_actions(self, query: AuditQuery) -> list[AuditEntry]:
        """The records :meth:`AuditQuery.matches` selects, by seq, at most ``query.limit``;
        page with ``after_seq`` set to the last seq returned."""
        ...


class AttachmentRows(Protocol):
    """Attachment rows: recorded after their file, claimed with their message (see
    :class:`LogStore`), served only to those who may see that message, discarded when unsent.

    * **Visibility in the query.** A sent attachment is found for a user whose membership
      intervals contain its message's seq, inside their window; an unsent one only for its
      uploader, until it expires.
    * **Ids, not files.** Discarding and shredding return the ids whose keys were destroyed;
      removing their files is the caller's (the attachment service).
    """

    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo:
        """Record an upload whose file ``new.id`` the caller has already written.

        Wraps ``new.dek`` with the active KEK and seals the name and thumbnail with it.  The
        attachment waits, unsent, until a message refers to it or ``new.ttl_ms`` have passed.
        :class:`~chatd.core.errors.UserNotFound` for an unknown uploader,
        :class:`~chatd.core.errors.ConflictError` if the id was ever used."""
        ...

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
        ...

    async def expired_attachments(self, now_ms: int, limit: int = 1000) -> list[int]:
        """Unsent attachments whose time to wait for a message is over at ``now_ms``."""
        ...

    async def discard_attachments(self, attachment_ids: Sequence[int], now_ms: int) -> list[int]:
        """Delete those of ``attachment_ids`` still unsent and expired at ``now_ms``: their
        keys are destroyed and their rows deleted in one transaction.  Returns the ids
        discarded (the caller then removes their files)."""
        ...

    async def sweep_attachments(self, now_ms: int) -> list[int]:
        """Discard every attachment expired at ``now_ms``; the ids discarded."""
        swept: list[int] = []
        while batch := await self.expired_attachments(now_ms):
            gone = await self.discard_attachments(batch, now_ms)
            swept.extend(gone)
            if not gone:
                break
        return swept

    async def attachment_keys(self, after: int = 0, limit: int = 200) -> list[AttachmentKey]:
        """Every attachment row with an id above ``after``, by id, at most ``limit`` — what
        the file audit needs: the data key of each row that passes the row audit, and which
        rows belong to a shredded conversation (their files are noise)."""
        ...

    async def live_attachments(self, attachment_ids: Sequence[int]) -> set[int]:
        """Those of ``attachment_ids`` whose row exists with a live data key (now)."""
        ...


class ClusterJobs(Protocol):
    """Background work that must run once per cluster, not once per node (the attachment
    sweep; later the mailbox sync)."""

    async def hold_lease(self, job: str) -> bool:
        """Whether this process should do ``job`` now: it holds the job's lease (taking it
        if it is free).  Ask before each run: a lease is lost when its holder's connection to
        the database dies, and then another process gets it.  A job must stay correct when
        two processes run it at once for a moment; the lease saves the work, it is not what
        keeps the job right.  Released by :meth:`Store.close`."""
        ...


class Store(
    LogStore,
    AccountStore,
    LoginAttempts,
    UploadBudgets,
    LiveSessionStore,
    InboxStore,
    KeyStore,
    AttachmentRows,
    AdminAuditStore,
    CheckpointStore,
    ClusterJobs,
    Protocol,
):
    """The whole store.  Use as ``async with store:`` or call :meth:`open` / :meth:`close`.

    **Epoch.** Every database has an epoch, a random id created with it: it tells this
    database from another one (a restored backup, a replacement) that would reuse the same
    conversation numbers and seqs.  An operator declares a new epoch (``chatd store
    new-epoch``) when the database was restored or replaced behind the clients' back.
    """

    async def open(self) -> None:
        """Connect, bring the schema up to date, start the writer."""
        ...

    async def close(self) -> None:
        """Finish pending writes, then release connections.  Idempotent."""
        ...

    async def ping(self) -> None:
        """Raise (:class:`~chatd.core.errors.ChatdError`) unless the database answers a read
        of its own rows now (``/healthz``)."""
        ...

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

    async def declare_new_epoch(self, *, audit: AdminAction | None = None) -> str:
        """Give the database a new random epoch, durably; return it.  ``audit`` is recorded
        with the new epoch as its target."""
        ...
