"""Detecting a rewound or forked log: the chain hashes the client remembers, as plain code.

Every event the server shows carries its chain link, ``hash`` and ``prev_hash``
(``docs/protocol.md`` §9.2).  The client remembers, per conversation, the last one it saw —
its **head** — and checks whatever the server says next against it:

* a pushed event at the head's seq must have the head's hash (else the log forked);
* a pushed event right after the head must name the head as its ``prev_hash``;
* ``sync`` with ``[conv, seq, hash]`` answers ``at``, the log's hash at that seq: it must be
  the held one (``null``: the log no longer reaches that seq — it was rewound);
* ``list`` tells each conversation's head seq: under the held one, the log went back.

Any failure is a :class:`Rewind`: the server serves a history that does not extend the one
the client saw (a restored backup, a damaged or tampered database) without having declared it.
A declared one changes the epoch (``hello``), and then the heads are simply dropped.

The client never sees ciphertexts, so it cannot recompute a hash: this catches a rewound or
forked *database* behind an honest server process, not a lying server (the protocol says so).

After a rewind in a conversation, its head stays as it was (the history the person saw) and
that conversation is not checked again in this run: warned once, loudly, not on every push.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clients.cli.i18n import _

HASH_DIGITS = 64
_HEX = frozenset("0123456789abcdef")


def chain_hash(value: object) -> str | None:
    """A chain hash as the wire writes it (64 lower-case hex digits), else None."""
    if isinstance(value, str) and len(value) == HASH_DIGITS and _HEX.issuperset(value):
        return value
    return None


@dataclass(frozen=True, slots=True)
class Head:
    """The last event of a conversation the client saw: its seq and chain hash."""

    seq: int
    hash: str


class Why(enum.Enum):
    SHORTER = "shorter"  # the log no longer has the held seq (or the conversation is gone)
    DIFFERS = "differs"  # the log has another event at the held seq
    UNLINKED = "unlinked"  # the event after the held one does not follow it


@dataclass(frozen=True, slots=True)
class Rewind:
    """The server's log does not extend what the client saw of ``conv`` at ``seq``."""

    conv: int
    seq: int
    why: Why

    def sentence(self) -> str:
        """What chatd-cli says, loudly (it goes to stderr)."""
        conv, seq = str(self.conv), str(self.seq)
        match self.why:
            case Why.SHORTER:
                detail = _(
                    "The server no longer has message {seq} of conversation {conv}, which this"
                    " device received.",
                    conv=conv,
                    seq=seq,
                )
            case Why.DIFFERS:
                detail = _(
                    "The server now shows another event as message {seq} of conversation"
                    " {conv} than the one this device received.",
                    conv=conv,
                    seq=seq,
                )
            case Why.UNLINKED:
                detail = _(
                    "The events the server sends after message {seq} of conversation {conv} do"
                    " not follow the ones this device received.",
                    conv=conv,
                    seq=seq,
                )
        return _(
            "WARNING: the server rewrote the history of conversation {conv} (from seq {seq})"
            " without declaring it. {detail} Messages may have been lost or changed: tell"
            " your administrator.",
            conv=conv,
            seq=seq,
            detail=detail,
        )


# ----------------------------------------------------------------------------- the rules


def check_event(head: Head | None, seq: int, digest: str, prev: str) -> Rewind | None:
    """A pushed (or paged) event against the held head of its conversation; the conversation
    is the caller's (``conv`` 0 in the result, filled by :class:`Heads`)."""
    if head is None or seq < head.seq or seq > head.seq + 1:
        return None  # nothing held, an older event, or a gap (the user was away): no link
    if seq == head.seq:
        return None if digest == head.hash else Rewind(0, seq, Why.DIFFERS)
    return None if prev == head.hash else Rewind(0, head.seq, Why.UNLINKED)


def check_at(held: Head, at: str | None) -> Rewind | None:
    """``sync``'s ``at`` for the held head: the log must have the same hash there."""
    if at is None:
        return Rewind(0, held.seq, Why.SHORTER)
    return None if at == held.hash else Rewind(0, held.seq, Why.DIFFERS)


def check_listed(held: Head, head_seq: int, head: str | None) -> Rewind | None:
    """A ``list`` entry's head (``last_seq``, ``head``) against the held one: it may be
    later (not checkable here), never earlier, and the same seq has the same hash."""
    if head_seq < held.seq:
        return Rewind(0, held.seq, Why.SHORTER)
    if head_seq == held.seq and head is not None and head != held.hash:
        return Rewind(0, held.seq, Why.DIFFERS)
    return None


def _for(conv: int, found: Rewind | None) -> Rewind | None:
    return None if found is None else Rewind(conv, found.seq, found.why)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ----------------------------------------------------------------------------- the state


@dataclass
class Heads:
    """The heads the client holds, of one history (``epoch``); what the heads file keeps."""

    epoch: str | None = None
    held: dict[int, Head] = field(default_factory=dict)
    alarmed: set[int] = field(default_factory=set)  # warned in this run: no longer checked
    changed: bool = False  # held since the last save

    def enter(self, epoch: str | None) -> bool:
        """The server announced ``epoch``; True if the heads were of another one and were
        dropped (a declared rewind: the new history is accepted as it is)."""
        dropped = self.epoch is not None and epoch is not None and epoch != self.epoch
        if dropped:
            self.held.clear()
            self.alarmed.clear()
            self.changed = True
        if epoch is not None and epoch != self.epoch:
            self.epoch = epoch
            self.changed = True
        return dropped

    def _adopt(self, conv: int, head: Head) -> None:
        current = self.held.get(conv)
        if conv not in self.alarmed and (current is None or head.seq > current.seq):
            self.held[conv] = head
            self.changed = True

    def _found(self, conv: int, found: Rewind | None) -> Rewind | None:
        if found is None:
            return None
        self.alarmed.add(conv)
        return _for(conv, found)

    def on_event(self, event: Mapping[str, Any]) -> Rewind | None:
        """An event the server sent (push or page): check it, then hold it if it is newer."""
        conv, seq = _int(event.get("conv")), _int(event.get("seq"))
        digest, prev = chain_hash(event.get("hash")), chain_hash(event.get("prev_hash"))
        if conv is None or seq is None or digest is None or prev is None:
            return None  # a server without hashes: nothing to check
        if conv in self.alarmed:
            return None
        found = self._found(conv, check_event(self.held.get(conv), seq, digest, prev))
        if found is None:
            self._adopt(conv, Head(seq, digest))
        return found

    def sync_entries(self, positions: Mapping[int, int]) -> tuple[list[list[Any]], dict[int, Head]]:
        """``sync``'s ``convs`` for the held seqs ``positions``, with the held hash where it
        names the position or one before it (the server then resumes from the head, and the
        events it resends are checked as they come); and the heads sent, by conversation."""
        entries: list[list[Any]] = []
        sent: dict[int, Head] = {}
        for conv in sorted(set(positions) | set(self.held)):
            head = None if conv in self.alarmed else self.held.get(conv)
            seq = positions.get(conv)
            if head is not None and (seq is None or head.seq <= seq):
                entries.append([conv, head.seq, head.hash])
                sent[conv] = head
            elif seq is not None:
                entries.append([conv, seq])
        return entries, sent

    def on_sync(self, sent: Mapping[int, Head], answers: Iterable[Any]) -> list[Rewind]:
        """``sync``'s ``heads`` for the heads ``sent``: each ``at`` must be the sent hash;
        then the server's head (of the same history) is held."""
        found: list[Rewind] = []
        for item in answers:
            if not isinstance(item, Mapping):
                continue
            conv = _int(item.get("conv"))
            held = sent.get(conv) if conv is not None else None
            if conv is None or held is None or item.get("seq") != held.seq:
                continue
            if conv in self.alarmed:
                continue
            rewind = self._found(conv, check_at(held, chain_hash(item.get("at"))))
            if rewind is not None:
                found.append(rewind)
                continue
            head_seq, head = _int(item.get("head_seq")), chain_hash(item.get("head"))
            if head_seq is not None and head is not None:
                self._adopt(conv, Head(head_seq, head))
        return found

    def on_list(self, entries: Iterable[Any]) -> list[Rewind]:
        """A ``list`` reply: every conversation the user is or was in, with its head.  A held
        conversation missing from it, or whose head is behind the held one, was rewound; one
        not held yet is held from here."""
        found: list[Rewind] = []
        listed: set[int] = set()
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            conv, last_seq = _int(entry.get("conv")), _int(entry.get("last_seq"))
            if conv is None or last_seq is None:
                continue
            listed.add(conv)
            head = chain_hash(entry.get("head"))
            held = self.held.get(conv)
            if conv in self.alarmed:
                continue
            if held is None:
                if head is not None and last_seq > 0:
                    self._adopt(conv, Head(last_seq, head))
                continue
            rewind = self._found(conv, check_listed(held, last_seq, head))
            if rewind is not None:
                found.append(rewind)
        for conv, held in sorted(self.held.items()):
            if conv not in listed and conv not in self.alarmed:
                self.alarmed.add(conv)
                found.append(Rewind(conv, held.seq, Why.SHORTER))
        return found


# ----------------------------------------------------------------------------- the file


FORMAT = 1


def encode(heads: Heads) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "epoch": heads.epoch,
        "heads": {str(conv): [h.seq, h.hash] for conv, h in sorted(heads.held.items())},
    }


def decode(data: object) -> Heads:
    """Heads from the file's JSON; what is unreadable is left out (never a crash: a head
    forgotten only means one check fewer)."""
    heads = Heads()
    if not isinstance(data, dict):
        return heads
    epoch = data.get("epoch")
    heads.epoch = epoch if isinstance(epoch, str) else None
    items = data.get("heads")
    for conv, value in items.items() if isinstance(items, dict) else ():
        if not (isinstance(conv, str) and conv.isdigit() and isinstance(value, list)):
            continue
        if len(value) == 2 and _int(value[0]) is not None and chain_hash(value[1]) is not None:
            heads.held[int(conv)] = Head(value[0], value[1])
    return heads


def merge(mine: Heads, theirs: Heads) -> Heads:
    """What to write when another process of the same user saved heads meanwhile: of the
    same history, the later head of each conversation (mine where I warned: the head the
    person saw stays); of another history, mine (this process heard the latest ``hello``)."""
    if theirs.epoch != mine.epoch:
        return mine
    held = dict(theirs.held)
    for conv, head in mine.held.items():
        other = held.get(conv)
        if conv in mine.alarmed or other is None or head.seq >= other.seq:
            held[conv] = head
    return Heads(mine.epoch, held, set(mine.alarmed))
