"""Event kinds, their payloads, and the stored-event record (design §2).

A conversation is an append-only log of events numbered 1, 2, 3 …  The kind, the sender and the
time are metadata kept in clear (the server needs them to route and order); the payload — text,
names, who was added — is msgpack sealed under the conversation's data key.

Payload shapes (msgpack maps):

=========  ==============================================  =================================
kind       payload                                         sender
=========  ==============================================  =================================
created    ``{"name": str, "members": [user ids]}``        the creator (also in members)
joined     ``{"user": id}``                                who added them
left       ``{"user": id}``                                the leaver (only oneself may leave)
renamed    ``{"name": str}``                               who renamed
message    ``{"text": str, "tag": None|"important"|       the author
           "question", "attachments": [ref, ...]}``
=========  ==============================================  =================================

A message's ``attachments`` are given as ids (``MessageBody.attachments``); the store's writer
stores, for each, ``{"id": 16 hex digits, "name", "mime", "size", "width", "height",
"thumbnail": bool}`` (``AttachmentInfo.message_ref``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chatd.core.ids import ConvId, Seq, UserId


class EventKind(StrEnum):
    CREATED = "created"
    JOINED = "joined"
    LEFT = "left"
    RENAMED = "renamed"
    MESSAGE = "message"


SYSTEM_KINDS = frozenset(k for k in EventKind if k is not EventKind.MESSAGE)


class MessageTag(StrEnum):
    IMPORTANT = "important"  # shown as "!"
    QUESTION = "question"  # shown as "?"


@dataclass(frozen=True, slots=True)
class Event:
    """An event as stored and opened: what readers and the fan-out receive.

    ``hash`` and ``prev_hash`` are its link of the conversation's hash chain
    (:func:`chatd.crypto.chain.link_hash`), shown to clients so that one that remembers the
    head it saw can tell a rewound or forked log (``docs/protocol.md`` §9.2).  A store always
    sets them; they are empty only in a record built by hand (a test of the wire codec).
    """

    conv_id: ConvId
    seq: Seq
    kind: str
    sender: UserId
    ts: int  # milliseconds since the Unix epoch, server clock
    payload: dict[str, Any]
    hash: bytes = b""
    prev_hash: bytes = b""


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event decided by the rules, before the store gives it a seq and seals it."""

    kind: EventKind
    sender: UserId
    payload: dict[str, Any]
