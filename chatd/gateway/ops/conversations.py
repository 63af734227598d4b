"""Conversation operations: ``create``, ``send``, ``add``, ``leave``, ``rename`` (changes,
through the one door :class:`~chatd.services.messaging.Messaging`), ``history`` and ``sync``
(reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from chatd.core import conversations as rules
from chatd.core.conversations import (
    MAX_MEMBERS,
    MESSAGE_EMPTY,
    NO_OTHER_MEMBER,
    TOO_MANY_MEMBERS,
    MessageBody,
)
from chatd.core.events import MessageTag
from chatd.core.ids import ConvId, UserId
from chatd.core.records import EventPage
from chatd.gateway.ops.base import Call, Reply, Request, SyncJob
from chatd.gateway.wire import (
    BAD_SEQ,
    BAD_USER,
    HISTORY_DEFAULT,
    HISTORY_MAX,
    MAX_INT,
    MAX_SYNC_CONVS,
    Fields,
    client_msg_id,
    conv_field,
    encode_ok,
    fit_events,
    message_text,
    name_field,
    refused,
)
from chatd.i18n import N_

BAD_MEMBERS = N_("The list of participants is not valid.")
BAD_SYNC = N_("The list of conversations to bring up to date is not valid (at most {max}).")
BAD_EPOCH = N_("The history id (epoch) must be the 32 hexadecimal digits given by hello.")
EPOCH_DIGITS = 32


async def _apply(call: Call, rid: int, op: rules.Operation) -> bytes:
    result = await call.services.messaging.apply(op)
    return encode_ok(
        rid,
        conv=result.conv_id,
        first_seq=result.first_seq,
        last_seq=result.last_seq,
        duplicate=result.duplicate,
    )


@dataclass(frozen=True, slots=True)
class Create(Request):
    op = "create"
    rid: int
    client_msg_id: str
    members: tuple[int, ...]
    name: str
    text: str | None
    tag: MessageTag | None
    attachments: tuple[int, ...] = ()  # uploaded attachment ids, for the first message

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        cmid = client_msg_id(f)
        members = f.ints(
            "members",
            min_items=1,
            max_items=MAX_MEMBERS,
            invalid=BAD_MEMBERS,
            too_few=NO_OTHER_MEMBER,
            too_many=TOO_MANY_MEMBERS,
        )
        name = name_field(f)
        attachments = f.attachment_ids("attachments")
        text = message_text(f, with_attachments=bool(attachments))
        return cls(rid, cmid, members, name, text, f.tag("tag"), attachments)

    async def run(self, call: Call) -> Reply:
        first = None
        if self.text is not None or self.attachments:
            first = MessageBody(self.text or "", self.tag, self.attachments)
        user = call.session.user_id
        op = rules.CreateConversation(user, self.members, self.name, self.client_msg_id, first)
        return await _apply(call, self.rid, op)


@dataclass(frozen=True, slots=True)
class Send(Request):
    op = "send"
    rid: int
    client_msg_id: str
    conv: ConvId
    text: str
    tag: MessageTag | None
    attachments: tuple[int, ...] = ()  # uploaded attachment ids (docs: Attachments)

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        cmid = client_msg_id(f)
        conv = conv_field(f)
        attachments = f.attachment_ids("attachments")
        text = message_text(f, with_attachments=bool(attachments))
        if text is None and not attachments:
            raise refused("text", MESSAGE_EMPTY)
        return cls(rid, cmid, conv, text or "", f.tag("tag"), attachments)

    async def run(self, call: Call) -> Reply:
        body = MessageBody(self.text, self.tag, self.attachments)
        op = rules.PostMessage(self.conv, call.session.user_id, body, self.client_msg_id)
        return await _apply(call, self.rid, op)


@dataclass(frozen=True, slots=True)
class Add(Request):
    op = "add"
    rid: int
    client_msg_id: str
    conv: ConvId
    user: UserId

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        cmid = client_msg_id(f)
        conv = conv_field(f)
        return cls(rid, cmid, conv, UserId(f.integer("user", minimum=1, invalid=BAD_USER)))

    async def run(self, call: Call) -> Reply:
        op = rules.AddMember(self.conv, call.session.user_id, self.user, self.client_msg_id)
        return await _apply(call, self.rid, op)


@dataclass(frozen=True, slots=True)
class Leave(Request):
    op = "leave"
    rid: int
    client_msg_id: str
    conv: ConvId

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        cmid = client_msg_id(f)
        return cls(rid, cmid, conv_field(f))

    async def run(self, call: Call) -> Reply:
        op = rules.Leave(self.conv, call.session.user_id, self.client_msg_id)
        return await _apply(call, self.rid, op)


@dataclass(frozen=True, slots=True)
class Rename(Request):
    op = "rename"
    rid: int
    client_msg_id: str
    conv: ConvId
    name: str

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        cmid = client_msg_id(f)
        conv = conv_field(f)
        return cls(rid, cmid, conv, name_field(f))

    async def run(self, call: Call) -> Reply:
        op = rules.Rename(self.conv, call.session.user_id, self.name, self.client_msg_id)
        return await _apply(call, self.rid, op)


def page_fields(page: EventPage, newest_first_cut: bool) -> dict[str, Any]:
    """The reply fields of a history page, cut to :data:`wire.MAX_REPLY_BYTES`."""
    events = list(page.events)
    # Reading backwards keeps the newest and drops the oldest.
    kept = list(reversed(fit_events(reversed(events)))) if newest_first_cut else fit_events(events)
    cut = len(kept) < len(events)
    return {
        "conv": page.conv_id,
        "events": kept,
        "archived": page.archived and not cut,
        "has_more": page.has_more or cut,
        "window_start": page.window_start,
    }


@dataclass(frozen=True, slots=True)
class History(Request):
    op = "history"
    rid: int
    conv: ConvId
    before: int | None
    after: int | None
    limit: int

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        conv = conv_field(f)
        before = f.integer("before", minimum=1, default=None, invalid=BAD_SEQ)
        after = f.integer("after", default=None, invalid=BAD_SEQ)
        if before is not None and after is not None:
            raise refused(
                "before", N_("Ask for the messages before a point or after it, not both.")
            )
        limit = f.integer(
            "limit",
            minimum=1,
            maximum=HISTORY_MAX,
            default=HISTORY_DEFAULT,
            invalid=N_("The number of messages asked for must be from {min} to {max}."),
        )
        return cls(rid, conv, before, after, limit)

    async def run(self, call: Call) -> Reply:
        reading = call.services.reading
        user = call.session.user_id
        if self.after is not None:
            page = await reading.after(user, self.conv, self.after, self.limit)
            return encode_ok(self.rid, **page_fields(page, newest_first_cut=False))
        before = MAX_INT + 1 if self.before is None else self.before
        page = await reading.before(user, self.conv, before, self.limit)
        return encode_ok(self.rid, **page_fields(page, newest_first_cut=True))


@dataclass(frozen=True, slots=True)
class Sync(Request):
    op = "sync"
    rid: int
    convs: tuple[tuple[int, int], ...]  # (conv, last seq the client holds)
    epoch: str | None = None  # the epoch those seqs were received in (None: not said)
    checks: tuple[tuple[int, int], ...] = ()  # (conv, seq) where the client holds a hash

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        epoch = f.text(
            "epoch", min_chars=EPOCH_DIGITS, max_chars=EPOCH_DIGITS, default=None, invalid=BAD_EPOCH
        )
        if epoch is not None and not all(c in "0123456789abcdef" for c in epoch):
            raise refused("epoch", BAD_EPOCH)
        items = f.positions("convs", max_items=MAX_SYNC_CONVS, invalid=BAD_SYNC)
        # The server needs only where the client holds a hash, not the hash: it answers with
        # its own, and the client compares (a client can check; the server has nothing to).
        checks = tuple((conv, seq) for conv, seq, held in items if held is not None)
        return cls(rid, tuple((conv, seq) for conv, seq, _ in items), epoch, checks)

    async def run(self, call: Call) -> Reply:
        positions, changed = call.services.reading.trusted_positions(self.epoch, dict(self.convs))
        # Hashes of another epoch name another history: nothing to compare them with.
        checks = () if changed else self.checks
        return SyncJob(self.rid, positions, changed, checks)  # the connection's sender runs it


REQUESTS = (
    Create,
    Send,
    Add,
    Leave,
    Rename,
    History,
    Sync,
)
