"""This node's side of the broker: committed events, read markers and session ends, delivered
to the sessions connected here.

The fan-out subscribes to the broker (:mod:`chatd.broker`).  Committed events enter a queue
in the order the broker hands them over — on the in-memory broker, the order the writer
resolved them, seq order within each conversation — and one dispatcher task takes them a
batch at a time (the conversations of a batch at once, each in seq order), asks who may
read each event (:meth:`~chatd.services.reading.Reading.audience`:
the users whose membership intervals contain its seq, so a ``left`` event reaches the leaver
and nothing after it does, a ``joined`` event reaches the added user), encodes each event once
and offers it to every session of each of those users through the hub.

A committed batch from another node is a pointer (a conversation and a range of seqs, never
content: :mod:`chatd.broker.wire`); the dispatcher reads those events from the store, once
per conversation per batch, through :meth:`~chatd.services.reading.Reading.committed_events`.

Routing never trusts what a client claims: the audience comes from the store.  And delivery
does not trust the broker either: each connection's cursors (:mod:`chatd.gateway.session`)
drop what was already sent and fill any gap from the store, so the guarantee "in seq order,
exactly once, no silent gap" holds even if a publication is lost, repeated or late.

A lost pointer is found by the head poll (:mod:`chatd.gateway.head_poll`): the fan-out
remembers the last seq it was handed per conversation (the newest :data:`NOTED_LIMIT`
conversations), and :meth:`Fanout.catch_up` turns each head the store reports beyond it
into a pointer of its own, for the seqs this node was never told about.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chatd.broker.base import Broker, Committed, EndSessions, Publication, ReadMarker, SessionEnd
from chatd.core.events import Event
from chatd.gateway.hub import Hub
from chatd.gateway.wire import CloseCode, encode_event, encode_state
from chatd.services.reading import Reading

log = logging.getLogger("chatd.gateway.fanout")

NOTED_LIMIT = 100_000  # conversations whose last seq handed over is remembered
# A conversation this node was never told about (or forgot): the head poll reads at most its
# last UNSEEN_SPAN events, enough for a left or joined event before the last one to reach
# its audience; a session that was further behind fills the rest from its cursor's gap.
UNSEEN_SPAN = 50

CLOSE_CODES = {
    SessionEnd.LOGGED_OUT: CloseCode.LOGGED_OUT,
    SessionEnd.USER_DISABLED: CloseCode.USER_DISABLED,
}


@dataclass(frozen=True, slots=True)
class EventPush:
    """A committed event for a session's queue, already encoded."""

    conv: int
    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StatePush:
    """Per-user state (a read marker) for the user's other sessions."""

    data: bytes


class Fanout:
    def __init__(self, broker: Broker, reading: Reading, hub: Hub) -> None:
        self._broker = broker
        self._reading = reading
        self._hub = hub
        self._pending: deque[Committed] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._noted: OrderedDict[int, int] = OrderedDict()  # conv → last seq handed over
        self.published = 0  # events dispatched, for tests and metrics
        self.caught_up = 0  # pointers made by catch_up, for tests and metrics

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-fanout")
        self._unsubscribe = self._broker.subscribe(self.receive)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def receive(self, publication: Publication) -> None:
        """The broker's receiver: never blocks (events are queued for the dispatcher)."""
        match publication:
            case Committed(conv_id=conv_id):
                if (span := publication.span) is not None:
                    self._note(conv_id, span[1])
                    self._pending.append(publication)
                    self._wake.set()
            case ReadMarker(user_id=user, state=state, origin=origin):
                push = StatePush(encode_state(state.conv_id, state.read_seq, state.unread))
                self._hub.deliver(user, push, exclude=origin)
            case EndSessions(reason=reason, token_hashes=tokens, user_id=user):
                code = CLOSE_CODES[reason]
                for token_hash in tokens:
                    self._hub.close_token(token_hash, code)
                if user is not None:
                    self._hub.close_user(user, code)

    def catch_up(self, heads: Mapping[int, int]) -> int:
        """Heads the store reported (conv → last seq): queue a pointer for each conversation
        whose head is past the last seq this node was handed; how many."""
        made = 0
        for conv_id, last_seq in heads.items():
            noted = self._noted.get(conv_id)
            if noted is not None and noted >= last_seq:
                continue
            first = noted + 1 if noted is not None else max(1, last_seq - UNSEEN_SPAN + 1)
            self.receive(Committed.pointer(conv_id, first, last_seq))
            made += 1
        self.caught_up += made
        return made

    def _note(self, conv_id: int, last_seq: int) -> None:
        if self._noted.get(conv_id, 0) < last_seq:
            self._noted[conv_id] = last_seq
        self._noted.move_to_end(conv_id)
        if len(self._noted) > NOTED_LIMIT:
            self._noted.popitem(last=False)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                await self._dispatch(batch)

    async def _dispatch(self, batch: list[Committed]) -> None:
        by_conv: dict[int, dict[int, Event]] = {}
        pointed: dict[int, tuple[int, int]] = {}  # conv -> the seqs other nodes pointed at
        for committed in batch:
            events = by_conv.setdefault(committed.conv_id, {})
            events.update((event.seq, event) for event in committed.events)
            if not committed.events and committed.span is not None:
                first, last = committed.span
                low, high = pointed.get(committed.conv_id, (first, last))
                pointed[committed.conv_id] = (min(low, first), max(high, last))
        # The conversations of a batch are independent: their reads run at once (bounded by
        # the store's pool), so one slow read no longer queues every other conversation's
        # behind it.  Within a conversation, events still go out in seq order, and batches
        # one after another.
        await asyncio.gather(
            *(
                self._dispatch_conversation(conv_id, events, pointed.get(conv_id))
                for conv_id, events in by_conv.items()
            )
        )

    async def _dispatch_conversation(
        self, conv_id: int, events: dict[int, Event], pointed: tuple[int, int] | None
    ) -> None:
        try:
            if pointed is not None:  # one read per conversation per batch
                read = await self._reading.committed_events(conv_id, *pointed)
                events.update((event.seq, event) for event in read)
            if not events:
                return
            audience = await self._reading.audience(conv_id, min(events), max(events))
        except Exception as exc:
            # Sessions that miss these resume (their cursors see the gap); log no content.
            log.warning("fan-out of conversation %d failed: %s", conv_id, type(exc).__name__)
            return
        for seq in sorted(events):
            event = events[seq]
            push = EventPush(conv_id, seq, encode_event(event))
            for user in audience.get(seq, ()):
                self._hub.deliver(user, push)
            self.published += 1
