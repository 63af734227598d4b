"""What crosses the broker, and the protocol every broker implements.

Like centrifuge's ``Broker`` and encode/broadcaster's backends: the broker moves
*publications* between the services that commit changes and the gateways that hold the
sockets; local delivery (the hub) stays a separate concern.

The broker is a fast path, never the source of truth.  A publication may be lost, delivered
twice or late (a NATS reconnect, a slow node): each connection's cursors drop what it
already has and fill any gap from the store (:mod:`chatd.gateway.session`), so delivery stays
exactly once and in seq order whatever the broker does.  A session end that is lost is found
by the revocation sweep (at most a second later); a lost read marker only delays another
device's unread count until its next ``list``.

Publications are plain values, made of core records: a network broker serialises them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from chatd.core.events import Event
from chatd.core.records import AppendResult, ReadState


@dataclass(frozen=True, slots=True)
class Committed:
    """Events durably appended to one conversation, in seq order.

    On the node that committed them ``events`` holds them.  Another node receives a
    *pointer*: no events, only the range ``first_seq``..``last_seq`` (a network broker never
    carries content, :mod:`chatd.broker.wire`), and its fan-out reads them from the store.
    """

    conv_id: int
    events: tuple[Event, ...] = ()
    first_seq: int = 0
    last_seq: int = 0

    @classmethod
    def of(cls, result: AppendResult) -> Committed:
        return cls(result.conv_id, result.events)

    @classmethod
    def pointer(cls, conv_id: int, first_seq: int, last_seq: int) -> Committed:
        return cls(conv_id, (), first_seq, last_seq)

    @property
    def span(self) -> tuple[int, int] | None:
        """The seqs covered, first and last; None for an empty batch (nothing to deliver)."""
        if self.events:
            return self.events[0].seq, self.events[-1].seq
        if 1 <= self.first_seq <= self.last_seq:
            return self.first_seq, self.last_seq
        return None


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """A user's read state changed; ``origin`` (a session id) already has the answer."""

    user_id: int
    state: ReadState
    origin: str | None = None


class SessionEnd(StrEnum):
    """Why sessions end; each gateway maps it to its close code."""

    LOGGED_OUT = "logged_out"
    USER_DISABLED = "user_disabled"


@dataclass(frozen=True, slots=True)
class EndSessions:
    """Close the live sessions of these tokens, or of every token of ``user_id``."""

    reason: SessionEnd
    token_hashes: tuple[bytes, ...] = ()
    user_id: int | None = None


Publication = Committed | ReadMarker | EndSessions
Receiver = Callable[[Publication], None]


class Broker(Protocol):
    """Publishes to every subscribed receiver of every node, this one included.

    :meth:`publish` does not wait: a service publishes right after its commit returned, with
    no ``await`` in between, so that one node's publications leave in commit order.  A
    receiver must not block either (it queues); it runs on the event loop of its node.
    """

    def publish(self, publication: Publication) -> None: ...

    def subscribe(self, receiver: Receiver) -> Callable[[], None]:
        """Start receiving; returns the function that stops it."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> str:
        """``local`` (in-process: nothing to reach), ``ok`` (connected and subscribed) or
        ``down`` (reconnecting: this node still serves, filling from the store)."""
        ...
