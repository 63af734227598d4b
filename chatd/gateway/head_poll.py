"""The broker's fallback: once a second, ask the store which heads moved and deliver what
this node was not told about.

A pointer another node published can be lost on its way (:mod:`chatd.broker.base`): NATS
restarting, this node reconnecting a moment after the publisher sent, the NATS server
cutting a slow consumer.  The connections' cursors fill a gap when the conversation's next
event arrives, but the last events before a silence would wait for the client to resume.
So every node runs this poll for itself (each node delivers to its own sockets; no lease,
no coordination): a :class:`~chatd.store.head_feed.HeadWatch` names the conversations whose
head moved since its last look, and :meth:`~chatd.gateway.fanout.Fanout.catch_up` turns
every head beyond what the fan-out was handed into a pointer, which the fan-out reads and
delivers like any other.  When the broker works, the heads it reports are already known and
the poll costs one read a second.

The bound this gives: an event the broker lost reaches the live sessions of its audience
within ``CHATD_HEAD_POLL_SECONDS`` (plus a read), whichever node appended it.  A failed look
(the database restarting) is logged and retried at the next tick; the watch is made again
if it was never made.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from chatd.gateway.fanout import Fanout
from chatd.services.reading import Reading

if TYPE_CHECKING:  # the gateway names the store's types, never loads the store
    from chatd.store.head_feed import HeadWatch

log = logging.getLogger("chatd.gateway.head_poll")


class HeadPoller:
    def __init__(self, feed: Reading, fanout: Fanout, every: float) -> None:
        self._feed = feed
        self._fanout = fanout
        self._every = every
        self._watch: HeadWatch | None = None
        self._task: asyncio.Task[None] | None = None
        self.looks = 0  # completed looks, for tests and metrics

    async def start(self) -> None:
        """Make the watch now (what commits from here on is watched), then poll."""
        await self._make_watch()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-head-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def poll(self) -> int:
        """One look: how many conversations were handed to the fan-out."""
        if self._watch is None and not await self._make_watch():
            return 0
        assert self._watch is not None
        moved = await self._watch.moved()
        self.looks += 1
        return self._fanout.catch_up(moved)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)  # a period, not a synchronisation
            try:
                await self.poll()
            except Exception as exc:  # the store is restarting or closing: next tick
                log.warning("head poll skipped: %s", type(exc).__name__)

    async def _make_watch(self) -> bool:
        try:
            self._watch = await self._feed.head_watch()
        except Exception as exc:  # a node may start while its database restarts
            log.warning("head watch not made yet: %s", type(exc).__name__)
            return False
        return True
