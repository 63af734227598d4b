"""Inbox operations: ``list`` (the conversation list) and ``read`` (a read marker)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from chatd.gateway.ops.base import Call, Reply, Request
from chatd.gateway.wire import BAD_SEQ, Fields, conv_field, encode_ok, event_map

if TYPE_CHECKING:
    from chatd.services.inbox import InboxEntry


def entry_map(entry: InboxEntry) -> dict[str, Any]:
    return {
        "conv": entry.conv_id,
        "name": entry.name,
        "members": list(entry.members),
        "member": entry.is_member,
        "last_seq": entry.last_seq,
        "read_seq": entry.read_seq,
        "unread": entry.unread,
        "last": None if entry.preview is None else event_map(entry.preview),
        "head": None if entry.head is None else entry.head.hex(),
    }


@dataclass(frozen=True, slots=True)
class ListConversations(Request):
    op = "list"
    rid: int

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        return cls(rid)

    async def run(self, call: Call) -> Reply:
        entries = await call.services.inbox.conversations(call.session.user_id)
        return encode_ok(self.rid, conversations=[entry_map(e) for e in entries])


@dataclass(frozen=True, slots=True)
class MarkRead(Request):
    op = "read"
    rid: int
    conv: int
    seq: int

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        conv = conv_field(f)
        return cls(rid, conv, f.integer("seq", invalid=BAD_SEQ))

    async def run(self, call: Call) -> Reply:
        inbox = call.services.inbox
        state = await inbox.mark_read(call.session.user_id, self.conv, self.seq, origin=call.sub.id)
        return encode_ok(self.rid, conv=state.conv_id, read_seq=state.read_seq, unread=state.unread)


REQUESTS = (ListConversations, MarkRead)
