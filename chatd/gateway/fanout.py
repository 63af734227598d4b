"""Fan-out of committed events to every session of every user who may read them.

:meth:`Fanout.publish` is called right after ``store.apply`` returned — after the durable
commit — with no ``await`` in between, so results enter the dispatcher in the order the
writer resolved them, which is seq order within each conversation.  One dispatcher task then
takes them in that order, asks the store who may read each event (:meth:`Store.audience`:
the users whose membership intervals contain its seq, so a ``left`` event reaches the leaver
and nothing after it does, a ``joined`` event reaches the added user), encodes each event once
and offers it to every session of each of those users through the hub.

Routing never trusts what a client claims: the audience comes from the store.  And delivery
does not trust timing either: each connection's cursors (:mod:`chatd.gateway.session`) drop
what was already sent and fill any gap from the store, so the guarantee "in seq order, exactly
once, no silent gap" holds even if a publication were lost or late.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from chatd.core.events import Event
from chatd.core.records import AppendResult
from chatd.gateway.hub import Hub, Subscription
from chatd.gateway.protocol import encode_event
from chatd.store.contract import Store

log = logging.getLogger("chatd.gateway.fanout")


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
    def __init__(self, store: Store, hub: Hub) -> None:
        self._store = store
        self._hub = hub
        self._pending: deque[AppendResult] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0  # events dispatched, for tests and metrics

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-fanout")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def publish(self, result: AppendResult) -> None:
        """Queue a committed result for fan-out.  Synchronous on purpose: see the module."""
        if result.duplicate or not result.events:
            return
        self._pending.append(result)
        self._wake.set()

    def publish_state(self, user_id: int, data: bytes, exclude: Subscription | None) -> None:
        self._hub.deliver(user_id, StatePush(data), exclude)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                await self._dispatch(batch)

    async def _dispatch(self, batch: list[AppendResult]) -> None:
        by_conv: dict[int, list[Event]] = {}
        for result in batch:
            by_conv.setdefault(result.conv_id, []).extend(result.events)
        for conv_id, events in by_conv.items():
            seqs = [event.seq for event in events]
            try:
                audience = await self._store.audience(conv_id, min(seqs), max(seqs))
            except Exception as exc:
                # Sessions that miss these resume (their cursors see the gap); log no content.
                log.warning("fan-out of conversation %d failed: %s", conv_id, type(exc).__name__)
                continue
            for event in events:
                push = EventPush(conv_id, event.seq, encode_event(event))
                for user in audience.get(event.seq, ()):
                    self._hub.deliver(user, push)
                self.published += 1
