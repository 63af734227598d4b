"""Conversation rules: who may do what, and which events an operation produces.

Pure code, no I/O (the websockets/h11 habit): :func:`decide` takes the current state of a
conversation and an operation, and returns the events to append or raises one clear
:class:`~chatd.core.errors.ClientError`.  The store's single writer calls it while it holds
the write lock, so a decision and its append are atomic: a member who leaves cannot have a
message slip in after the leave, whatever the interleaving.

Rules (from the practitioners' documentation the product follows):

* anyone may create a conversation with one or several other people; a first message is
  optional;
* any current member may add a participant, and everyone is told who added whom; there is no
  way to remove someone else;
* only oneself may leave; a leaver keeps the history up to the leave, and may be added again
  later;
* any current member may rename the conversation or send a message, tagged ``important``
  (``!``) or ``question`` (``?``) or not at all.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from chatd.core.errors import (
    AlreadyMemberError,
    ConversationNotFound,
    ConversationShreddedError,
    NotAMemberError,
    UserDisabledError,
    UserNotFound,
    ValidationError,
)
from chatd.core.events import EventDraft, EventKind, MessageTag
from chatd.core.ids import ConvId, UserId
from chatd.core.text import code_point, first_forbidden_in_name, first_forbidden_in_text
from chatd.i18n import N_

NO_CONV = ConvId(0)  # a creation's conversation before the store numbers it
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 20_000
MAX_MEMBERS = 500
MAX_CLIENT_MSG_ID_CHARS = 64
MAX_ATTACHMENTS = 10

# What a person is told when a message, a conversation name or a participant list breaks the
# rules above (the protocol's validation says the same): gettext message ids, filled with
# ``max`` where they have it.
MESSAGE_TOO_LONG = N_("The message is over {max} characters.")
MESSAGE_EMPTY = N_("The message is empty.")
MESSAGE_NOT_TEXT = N_("The message must be text.")
NAME_TOO_LONG = N_("The conversation name is over {max} characters.")
NAME_EMPTY = N_("The conversation name is empty.")
NAME_NOT_TEXT = N_("The conversation name must be text.")
TOO_MANY_ATTACHMENTS = N_("A message carries at most {max} attachments.")
BAD_ATTACHMENTS = N_("The list of attachments is not valid: each attachment is given once.")
NO_OTHER_MEMBER = N_("A conversation needs at least one other participant.")
TOO_MANY_MEMBERS = N_("A conversation has at most {max} participants.")
MALFORMED = N_("The request is malformed (field {field}).")
# chatd.core.text says which characters and why; the sentence names the refused one by its
# code point (``U+202E``), never by itself.
TEXT_CONTROL = N_(
    "The message contains a control character ({char}); only tabs and line breaks are allowed."
)
NAME_INVISIBLE = N_(
    "The conversation name contains an invisible or direction-changing character ({char}),"
    " which is not allowed."
)


@dataclass(frozen=True, slots=True)
class MessageBody:
    text: str
    tag: MessageTag | None = None
    # Ids of uploaded attachments (see chatd.attachments).  The store's writer replaces them in
    # the stored payload by what readers need to show each one (AttachmentInfo.message_ref).
    attachments: tuple[int, ...] = ()

    def payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tag": None if self.tag is None else str(self.tag),
            "attachments": list(self.attachments),
        }


@dataclass(frozen=True, slots=True)
class CreateConversation:
    sender: UserId
    members: tuple[int, ...]  # the others; the sender is added implicitly
    name: str
    client_msg_id: str
    first_message: MessageBody | None = None
    # Not known yet; idempotency keys of creations live under conversation 0.
    conv_id: ConvId = NO_CONV


@dataclass(frozen=True, slots=True)
class PostMessage:
    conv_id: ConvId
    sender: UserId
    body: MessageBody
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class Rename:
    conv_id: ConvId
    sender: UserId
    name: str
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class AddMember:
    conv_id: ConvId
    sender: UserId
    user: UserId
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class Leave:
    conv_id: ConvId
    sender: UserId
    client_msg_id: str


Operation = CreateConversation | PostMessage | Rename | AddMember | Leave


@dataclass(frozen=True, slots=True)
class ConversationState:
    """What the rules need to know about a conversation."""

    conv_id: ConvId
    members: frozenset[int] = field(default_factory=frozenset)
    ever_members: frozenset[int] = field(default_factory=frozenset)
    shredded: bool = False


def clean_name(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValidationError(NAME_NOT_TEXT, field="name")
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise ValidationError(NAME_EMPTY, field="name")
    if len(name) > MAX_NAME_CHARS:
        raise ValidationError(NAME_TOO_LONG, field="name", max=MAX_NAME_CHARS)
    bad = first_forbidden_in_name(name)
    if bad is not None:
        raise ValidationError(NAME_INVISIBLE, field="name", char=code_point(bad))
    return name


def check_body(body: MessageBody) -> None:
    if not isinstance(body.text, str):
        raise ValidationError(MESSAGE_NOT_TEXT, field="text")
    if len(body.text) > MAX_TEXT_CHARS:
        raise ValidationError(MESSAGE_TOO_LONG, field="text", max=MAX_TEXT_CHARS)
    bad = first_forbidden_in_text(body.text)
    if bad is not None:
        raise ValidationError(TEXT_CONTROL, field="text", char=code_point(bad))
    if not body.text.strip() and not body.attachments:
        raise ValidationError(MESSAGE_EMPTY, field="text")
    if len(body.attachments) > MAX_ATTACHMENTS:
        raise ValidationError(TOO_MANY_ATTACHMENTS, field="attachments", max=MAX_ATTACHMENTS)
    if len(set(body.attachments)) != len(body.attachments) or not all(
        isinstance(a, int) and not isinstance(a, bool) and 0 < a < 2**63 for a in body.attachments
    ):
        raise ValidationError(BAD_ATTACHMENTS, field="attachments")


def check_client_msg_id(client_msg_id: object) -> None:
    if (
        not isinstance(client_msg_id, str)
        or not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID_CHARS
        or not client_msg_id.isprintable()
    ):
        raise ValidationError(MALFORMED, field="client_msg_id")


def referenced_users(op: Operation) -> tuple[int, ...]:
    """Users that must exist and be enabled for ``op`` to apply.

    For a creation that includes the creator: nothing else checks that the sender exists
    before their membership row is written (a member's later operations are covered by
    membership itself).
    """
    if isinstance(op, CreateConversation):
        return (op.sender, *op.members)
    if isinstance(op, AddMember):
        return (op.user,)
    return ()


def referenced_attachments(op: Operation) -> tuple[int, ...]:
    """Attachment ids the message of ``op`` carries (claimed atomically with its append)."""
    if isinstance(op, PostMessage):
        return op.body.attachments
    if isinstance(op, CreateConversation) and op.first_message is not None:
        return op.first_message.attachments
    return ()


def decide(
    state: ConversationState | None, op: Operation, active_users: Set[int]
) -> list[EventDraft]:
    """The events ``op`` appends to a conversation in ``state``, or a ClientError.

    ``state`` is None for a conversation that does not exist (and must be None for a
    creation). ``active_users`` contains at least every enabled user among
    :func:`referenced_users` ``(op)``.
    """
    check_client_msg_id(op.client_msg_id)
    if isinstance(op, CreateConversation):
        return _decide_create(op, active_users)
    if state is None or op.sender not in state.ever_members:
        raise ConversationNotFound()
    if state.shredded:
        raise ConversationShreddedError()
    if op.sender not in state.members:
        raise NotAMemberError()
    if isinstance(op, PostMessage):
        check_body(op.body)
        return [EventDraft(EventKind.MESSAGE, op.sender, op.body.payload())]
    if isinstance(op, Rename):
        return [EventDraft(EventKind.RENAMED, op.sender, {"name": clean_name(op.name)})]
    if isinstance(op, AddMember):
        if op.user not in active_users:
            raise UserNotFound(user=op.user)
        if op.user in state.members:
            raise AlreadyMemberError(user=op.user)
        return [EventDraft(EventKind.JOINED, op.sender, {"user": op.user})]
    if isinstance(op, Leave):
        return [EventDraft(EventKind.LEFT, op.sender, {"user": op.sender})]
    raise AssertionError(f"unknown operation {type(op).__name__}")  # pragma: no cover


def _decide_create(op: CreateConversation, active_users: Set[int]) -> list[EventDraft]:
    if op.sender not in active_users:
        raise UserDisabledError(user=op.sender)
    name = clean_name(op.name)
    others = list(dict.fromkeys(u for u in op.members if u != op.sender))
    if not others:
        raise ValidationError(NO_OTHER_MEMBER, field="members")
    if len(others) + 1 > MAX_MEMBERS:
        raise ValidationError(TOO_MANY_MEMBERS, field="members", max=MAX_MEMBERS)
    for user in others:
        if user not in active_users:
            raise UserNotFound(user=user)
    drafts = [
        EventDraft(EventKind.CREATED, op.sender, {"name": name, "members": [op.sender, *others]})
    ]
    if op.first_message is not None:
        check_body(op.first_message)
        drafts.append(EventDraft(EventKind.MESSAGE, op.sender, op.first_message.payload()))
    return drafts


def apply_membership(
    state: ConversationState, kind: str, payload: dict[str, Any]
) -> ConversationState:
    """The state after an appended event (membership is the only state the rules need)."""
    if kind == EventKind.CREATED:
        members = frozenset(payload["members"])
        return ConversationState(state.conv_id, members, state.ever_members | members)
    if kind == EventKind.JOINED:
        user = payload["user"]
        return ConversationState(
            state.conv_id, state.members | {user}, state.ever_members | {user}, state.shredded
        )
    if kind == EventKind.LEFT:
        return ConversationState(
            state.conv_id, state.members - {payload["user"]}, state.ever_members, state.shredded
        )
    return state
