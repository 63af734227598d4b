"""A user's conversation list (inbox) and read markers.

What a user may see is decided in the store's queries (membership intervals); this service
shapes it for a list screen: one entry per conversation the user is or was in, with the name
and members *as visible to them*, a short preview of the last event they may see, their read
marker and unread count.  For a former member everything is frozen at their ``left`` event:
they keep the conversation in their list, with the name it had and the last thing they saw,
and nothing that happened after (no later preview, no unread count for later messages).

Read markers are per-user state (design §2): never part of the conversation log, never shown
to others, pushed only to the user's own sessions (published on the broker, so that the
user's sessions on every node hear it).  A marker only moves forward, and never past the
last seq the user may see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chatd.broker.base import Broker, ReadMarker
from chatd.core.events import Event, EventKind
from chatd.core.records import InboxRow, ReadState
from chatd.store.contract import InboxStore

PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class InboxEntry:
    conv_id: int
    name: str | None  # None once the conversation was crypto-shredded
    members: tuple[int, ...]
    is_member: bool
    last_seq: int  # the last seq the user may see
    read_seq: int
    unread: int
    preview: Event | None  # the last event the user may see, text shortened
    head: bytes | None = None  # the chain hash at ``last_seq`` (protocol §9.2)


def preview(event: Event | None, limit: int = PREVIEW_CHARS) -> Event | None:
    """The event as a list shows it: a message's text cut to ``limit`` characters (the
    payload then says ``"truncated": True``); other events unchanged."""
    if event is None or event.kind != EventKind.MESSAGE:
        return event
    text = event.payload.get("text")
    if not isinstance(text, str) or len(text) <= limit:
        return event
    return replace(event, payload={**event.payload, "text": text[:limit], "truncated": True})


def entry(row: InboxRow) -> InboxEntry:
    return InboxEntry(
        conv_id=row.conv_id,
        name=row.name,
        members=row.members,
        is_member=row.is_member,
        last_seq=row.last_seq,
        read_seq=row.read_seq,
        unread=row.unread,
        preview=preview(row.last_event),
        head=row.last_hash,
    )


class Inbox:
    def __init__(self, store: InboxStore, broker: Broker) -> None:
        self._store = store
        self._broker = broker

    async def conversations(self, user_id: int) -> list[InboxEntry]:
        """Most recent activity first."""
        return [entry(row) for row in await self._store.inbox(user_id)]

    async def mark_read(
        self, user_id: int, conv_id: int, seq: int, *, origin: str | None = None
    ) -> ReadState:
        """Move the user's marker; their other sessions (not ``origin``, which gets the
        answer) are told."""
        state = await self._store.mark_read(user_id, conv_id, seq)
        self._broker.publish(ReadMarker(user_id, state, origin))
        return state
