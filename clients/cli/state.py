"""What the client holds, as plain code: the last seq per conversation, and conversation logs.

:class:`Cursors` is the resume algorithm of ``docs/protocol.md`` §9: ``held[conv]`` is the
highest seq the client holds, pushes at or below it are duplicates (a resume may resend what
a live push already brought), ``archived`` moves it to just before the window.  ``sync``
sends it back after every reconnect, which is how nothing is missed and nothing is shown twice.

:class:`ConversationLog` is one conversation as the interactive view shows it: its events in
seq order, its name and members as the events say, and the messages still in the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clients.cli.heads import Heads
from clients.cli.protocol import Event, Push


@dataclass
class Cursors:
    held: dict[int, int] = field(default_factory=dict)
    epoch: str | None = None  # the history the held seqs belong to (hello's ``epoch``)
    # The chain hashes last seen (kept across runs by the heads file): the rewind check.
    heads: Heads = field(default_factory=Heads)

    def enter(self, epoch: str | None) -> bool:
        """The server announced ``epoch``; True if it is not the one the held seqs came from,
        which are then dropped: after a restore the same seq may name another event.  The
        heads follow their own epoch (they may come from an earlier run): dropped too."""
        changed = self.epoch is not None and epoch is not None and epoch != self.epoch
        if changed:
            self.held.clear()
        if epoch is not None:
            self.epoch = epoch
        self.heads.enter(epoch)
        return changed

    def hold(self, conv: int, seq: int) -> None:
        """The client holds ``conv`` up to ``seq`` (from ``list`` or ``history``)."""
        if seq > self.held.get(conv, 0):
            self.held[conv] = seq

    def apply(self, push: Push) -> Push | None:
        """A push from the server → the push to act on, or None if already held."""
        conv = push.fields.get("conv")
        if not isinstance(conv, int):
            return None
        if push.op == "event":
            seq = push.fields.get("seq")
            if not isinstance(seq, int) or seq <= self.held.get(conv, 0):
                return None
            self.held[conv] = seq
            return push
        if push.op == "archived":
            start = push.fields.get("window_start")
            if isinstance(start, int):
                self.hold(conv, start - 1)
            return push
        if push.op == "state":
            return push
        return None  # a push of a later protocol version: nothing to hold


@dataclass
class PendingLine:
    """A change of this conversation still in the outbox (typed, not yet acknowledged)."""

    client_msg_id: str
    op: str
    fields: dict[str, Any]
    acked_seq: int | None = None  # the ack came; waiting for the event itself


@dataclass
class ConversationLog:
    conv: int
    name: str | None = None
    members: set[int] = field(default_factory=set)
    member: bool = True
    events: dict[int, Event] = field(default_factory=dict)  # by seq
    pending: dict[str, PendingLine] = field(default_factory=dict)  # by client_msg_id
    archived_before: int | None = None  # events before this seq are archived (not served)
    me: int | None = None

    @classmethod
    def from_list_entry(cls, entry: dict[str, Any], me: int | None) -> ConversationLog:
        return cls(
            conv=int(entry["conv"]),
            name=entry.get("name"),
            members=set(entry.get("members") or ()),
            member=bool(entry.get("member", True)),
            me=me,
        )

    # ------------------------------------------------------------------ events

    def add(self, event: Event) -> bool:
        """Record an event (from history or a push); False if it was already there."""
        seq = event.get("seq")
        if not isinstance(seq, int) or seq in self.events:
            return False
        newest = seq > self.last_seq
        self.events[seq] = event
        if newest:  # name and members as of the newest event (history pages come older)
            self._follow(event)
        return True

    def _follow(self, event: Event) -> None:
        kind = event.get("kind")
        if kind == "created":
            self.name = event.get("name", self.name)
            self.members = set(event.get("members") or ())
        elif kind == "renamed":
            self.name = event.get("name", self.name)
        elif kind == "joined" and isinstance(event.get("user"), int):
            self.members.add(event["user"])
            if event["user"] == self.me:
                self.member = True
        elif kind == "left" and isinstance(event.get("user"), int):
            self.members.discard(event["user"])
            if event["user"] == self.me:
                self.member = False

    def archived(self, window_start: int) -> None:
        self.archived_before = window_start

    @property
    def last_seq(self) -> int:
        return max(self.events, default=0)

    @property
    def first_seq(self) -> int | None:
        return min(self.events, default=None)

    def ordered(self) -> list[Event]:
        return [self.events[s] for s in sorted(self.events)]

    # ------------------------------------------------------------------ outbox

    def queued(self, client_msg_id: str, op: str, fields: dict[str, Any]) -> None:
        self.pending[client_msg_id] = PendingLine(client_msg_id, op, dict(fields))

    def acked(self, client_msg_id: str, last_seq: int) -> None:
        line = self.pending.get(client_msg_id)
        if line is not None:
            line.acked_seq = last_seq

    def dropped(self, client_msg_id: str) -> None:
        self.pending.pop(client_msg_id, None)

    def still_pending(self) -> list[PendingLine]:
        """Pending lines whose event has not arrived yet (the ack and the push may come in
        either order: a line stays until its event is shown)."""
        last = self.last_seq
        for cmid, line in list(self.pending.items()):
            if line.acked_seq is not None and line.acked_seq <= last:
                del self.pending[cmid]
        return list(self.pending.values())
