"""The one door for every change to a conversation: apply it, then publish what was committed.

Whoever writes — a WebSocket client, the admin command, later the mail bridge or a resource
team's queue — calls :meth:`Messaging.apply`.  The store decides (the conversation rules run
under its write lock), commits durably, and returns the events; they are published on the
broker right after, with no ``await`` in between, so that this node's publications leave in
the order the writer resolved them (seq order within each conversation).

A change, once started, completes even if its caller goes away: it runs as its own task,
which the caller only awaits through a shield.  A client that disconnected mid-commit learns
the outcome on retry (its ``client_msg_id`` makes the retry a duplicate).  :meth:`drain`
waits for those tasks at shutdown, before the store closes.
"""

from __future__ import annotations

import asyncio

from chatd.broker.base import Broker, Committed
from chatd.core.conversations import Operation
from chatd.core.records import AppendResult
from chatd.store.contract import LogStore


class Messaging:
    def __init__(self, store: LogStore, broker: Broker) -> None:
        self._store = store
        self._broker = broker
        self._inflight: set[asyncio.Task[AppendResult]] = set()

    async def apply(self, op: Operation) -> AppendResult:
        """Commit ``op`` durably, publish its events, return the outcome (a rule refusal
        raises its :class:`~chatd.core.errors.ClientError` and records nothing)."""
        task = asyncio.get_running_loop().create_task(self._apply_and_publish(op))
        self._inflight.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    async def _apply_and_publish(self, op: Operation) -> AppendResult:
        result = await self._store.apply(op)
        if not result.duplicate and result.events:
            self._broker.publish(Committed.of(result))  # no await since the commit: see above
        return result

    def _forget(self, task: asyncio.Task[AppendResult]) -> None:
        self._inflight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller may be gone; the error was answered

    async def drain(self) -> None:
        """Wait for the changes still being committed (at shutdown)."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
