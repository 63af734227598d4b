"""Plain records the store returns.  Frozen: a record is a fact as of one read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatd.core.events import Event
from chatd.i18n import N_, Language, Text


@dataclass(frozen=True, slots=True)
class UserProfile:
    """Personal data of a professional; sealed at rest."""

    first_name: str
    last_name: str
    profession: str = ""  # profession or specialty, e.g. "Médecin généraliste"
    structure: str = ""  # hospital, practice, care home…
    email: str = ""
    rpps: str | None = None  # national health professional number, when they have one


@dataclass(frozen=True, slots=True)
class NewUser:
    login: str
    password_hash: str
    profile: UserProfile
    language: str | None = None  # "fr", "en", or None: not chosen


@dataclass(frozen=True, slots=True)
class User:
    id: int
    login: str
    password_hash: str
    profile: UserProfile
    disabled: bool
    terms_version: str | None
    created_at: int
    # A one-time password set by an administrator: the user must choose a new one first.
    must_change_password: bool = False
    # The language the person chose ("fr", "en"); None: their client's, else the server's.
    language: str | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of a conversation operation, after its durable commit.

    ``duplicate`` is True when the ``client_msg_id`` had been seen: nothing was appended, and
    ``first_seq``/``last_seq`` are those of the original append (``events`` is then empty).
    """

    conv_id: int
    first_seq: int
    last_seq: int
    duplicate: bool
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Interval:
    """A membership interval: the user may read events with ``joined_seq <= seq < left_seq``."""

    joined_seq: int
    left_seq: int | None  # None while the user is a member

    def contains(self, seq: int) -> bool:
        return seq >= self.joined_seq and (self.left_seq is None or seq < self.left_seq)


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of events a user may see, in seq order.

    ``archived`` is True when the request reached past the user's visible window: there are
    events the user could once see that are now archived and will not be served.  The page
    is then the part of the request inside the window, never a silent cut.
    ``window_start`` is the lowest seq in the window (0 when the user sees no event at all).
    ``has_more`` tells whether more events in the window lie beyond this page in the
    direction of the read.
    """

    conv_id: int
    events: tuple[Event, ...]
    archived: bool
    has_more: bool
    window_start: int


@dataclass(frozen=True, slots=True)
class ConversationHead:
    """A conversation as seen in one user's list: the last event they may see."""

    conv_id: int
    is_member: bool
    last_event: Event | None  # None when the conversation's key was destroyed
    last_visible_seq: int


@dataclass(frozen=True, slots=True)
class ChainView:
    """What the log says, for one user, about a hash a client holds (protocol §9.2).

    ``at`` is the chain hash of the event at ``seq`` if that event exists and the user may
    see it (None: the log has no such event for them — it is shorter, or the seq was never
    theirs).  ``head_seq``/``head`` are the last event the user may see and its hash (0 and
    None in a conversation they never were in, or that is gone): a leaver's head is their
    ``left`` event, never a later one.
    """

    conv_id: int
    seq: int
    at: bytes | None
    head_seq: int
    head: bytes | None


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """The first broken place of a conversation (``user_id`` None), a broken user row, a
    broken attachment (``attachment_id``, also named in the reason; ``conv_id``/``seq`` of its
    message, 0 if unsent), or the first broken record of the admin audit log (``audit_seq``;
    ``conv_id`` and ``seq`` 0).  ``why`` is the reason as a sentence to translate (the operator
    reads it in the admin command's language); :attr:`reason` is its English text."""

    conv_id: int
    seq: int
    why: Text
    user_id: int | None = None
    attachment_id: int | None = None
    audit_seq: int | None = None

    @classmethod
    def of_attachment(
        cls, attachment_id: int, conv_id: int | None, seq: int | None, problem: Text
    ) -> VerifyProblem:
        """A broken attachment: the reason names the attachment itself, so that every output
        of verify (text, JSON) carries it."""
        reason = Text(
            N_("attachment {attachment}: {problem}"),
            {"attachment": f"{attachment_id:016x}", "problem": problem},
        )
        return cls(conv_id or 0, seq or 0, reason, attachment_id=attachment_id)

    @property
    def reason(self) -> str:
        return str(self.why)

    def where(self) -> Text:
        """The problem with its place: ``conversation 3, seq 12: hash mismatch …``."""
        if self.user_id is not None:
            return Text(
                N_("user {user}: {reason}"), {"user": str(self.user_id), "reason": self.why}
            )
        if self.audit_seq is not None:
            return Text(
                N_("admin audit log, record {seq}: {reason}"),
                {"seq": str(self.audit_seq), "reason": self.why},
            )
        if self.attachment_id is None and not self.conv_id:
            return self.why  # the database as a whole (no conversation has id 0)
        if self.attachment_id is not None:  # the reason starts with "attachment <id>"
            if not self.conv_id:
                return self.why
            return Text(
                N_("conversation {conv}, seq {seq}, {reason}"),
                {"conv": str(self.conv_id), "seq": str(self.seq), "reason": self.why},
            )
        return Text(
            N_("conversation {conv}, seq {seq}: {reason}"),
            {"conv": str(self.conv_id), "seq": str(self.seq), "reason": self.why},
        )

    def said(self, lang: Language) -> str:
        return self.where().render(lang)

    def __str__(self) -> str:
        return str(self.where())


@dataclass(frozen=True, slots=True)
class VerifyReport:
    conversations: int
    events: int
    problems: tuple[VerifyProblem, ...]
    attachments: int = 0  # attachment rows whose key, name and thumbnail open
    # Not broken, but worth a look (orphan files removed …): sentences to translate.
    warnings: tuple[Text, ...] = ()
    admin_actions: int = 0  # records of the admin audit log walked (chain checked)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---- sessions, read markers (gateway)


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A login token as stored: only the SHA-256 digest of the token is ever kept."""

    token_hash: bytes
    user_id: int
    created_at: int  # ms since the epoch
    expires_at: int  # ms since the epoch
    revoked_at: int | None = None
    device: str | None = None  # the family of the client at login (chatd.core.devices)
    last_seen_at: int | None = None  # a connection with it was last open then


@dataclass(frozen=True, slots=True)
class LiveSession:
    """One live WebSocket connection, as every node sees it in the store."""

    id: str  # unique across nodes (the node's id, a dot, a counter)
    node: str
    user_id: int
    token_hash: bytes
    opened_at: int  # ms since the epoch


@dataclass(frozen=True, slots=True)
class ReadState:
    """A user's read marker in one conversation and what is still unread after it."""

    conv_id: int
    read_seq: int
    unread: int


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One conversation of a user's list, exactly as that user may see it.

    For a member everything is current.  For a former member (``is_member`` False) it is
    frozen at their leave: the name, the members and the last event as of their ``left``
    event.  ``name`` and ``last_event`` are None once the conversation was crypto-shredded.
    """

    conv_id: int
    is_member: bool
    name: str | None
    members: tuple[int, ...]  # members right after ``last_seq``, sorted
    last_event: Event | None
    last_seq: int  # the last seq this user may see
    read_seq: int
    unread: int  # visible messages after read_seq not sent by the user, capped at the window
    # The chain hash of the event at ``last_seq`` (protocol §9.2), kept even once shredded.
    last_hash: bytes | None = None


# ---- attachments


@dataclass(frozen=True, slots=True)
class NewAttachment:
    """An upload whose encrypted file ``id`` is already in the blob store, to be recorded.

    ``dek`` is the key the file was sealed with: the store wraps it with the active KEK and
    seals ``name`` and ``thumbnail`` with it.  The upload is discarded ``ttl_ms`` after it was
    recorded unless a message refers to it first.
    """

    id: int
    uploader: int
    kind: str  # FileKind value of what is stored ("pdf", "jpeg" …)
    mime: str
    size: int  # plaintext bytes of the stored file
    name: str  # sanitised file name
    dek: bytes
    ttl_ms: int
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None  # JPEG


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """An attachment as its readers see it (the name opened)."""

    id: int
    uploader: int
    kind: str
    mime: str
    size: int
    name: str
    width: int | None
    height: int | None
    has_thumbnail: bool
    created_at: int
    expires_at: int  # meaningless once sent
    conv_id: int | None  # the message that carries it; None while unsent
    seq: int | None

    @property
    def wire_id(self) -> str:
        """The id as clients see it: 16 lower-case hex digits (ids exceed 2**53)."""
        return f"{self.id:016x}"

    def message_ref(self) -> dict[str, Any]:
        """What a ``message`` event's payload holds about it (sealed with the message)."""
        return {
            "id": self.wire_id,
            "name": self.name,
            "mime": self.mime,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "thumbnail": self.has_thumbnail,
        }


@dataclass(frozen=True, slots=True)
class AttachmentAccess:
    """What a download needs: the attachment, its data key, the thumbnail if asked for."""

    info: AttachmentInfo
    dek: bytes
    thumbnail: bytes | None = None


@dataclass(frozen=True, slots=True)
class AttachmentKey:
    """An attachment row as the file audit sees it (:meth:`Store.attachment_keys`)."""

    id: int
    conv_id: int | None  # its message, None while unsent
    seq: int | None
    size: int  # plaintext bytes the file must hold
    dek: bytes | None  # None: the row fails the row audit, or its key was destroyed
    shredded: bool  # its key was destroyed with its conversation: the file is noise
