"""Plain records the store returns.  Frozen: a record is a fact as of one read."""

from __future__ import annotations

from dataclasses import dataclass

from chatd.events import Event


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


@dataclass(frozen=True, slots=True)
class User:
    id: int
    login: str
    password_hash: str
    profile: UserProfile
    disabled: bool
    terms_version: str | None
    created_at: int


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
class VerifyProblem:
    """The first broken place of a conversation (``user_id`` None), or a broken user row."""

    conv_id: int
    seq: int
    reason: str
    user_id: int | None = None

    def __str__(self) -> str:
        if self.user_id is not None:
            return f"user {self.user_id}: {self.reason}"
        return f"conversation {self.conv_id}, seq {self.seq}: {self.reason}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    conversations: int
    events: int
    problems: tuple[VerifyProblem, ...]

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
