"""Delivering the outbox: every change sent in order, each with its own ``client_msg_id``,
again on every connection until the server answers.

:class:`Delivery` belongs to one :class:`~clients.cli.connection.Client`.
:meth:`Delivery.submit` writes the change to the :mod:`~clients.cli.outbox` file first and
hands back a future for its answer; :meth:`Delivery.flush` runs once per connection, sends the
first pending entry, waits for its answer, settles it, and goes on — so that messages arrive
in the order they were typed, and a connection that drops mid-way leaves the unanswered entry
at the head of the queue for the next one.  What earlier runs left in the file is sent the
same way, which is how "the next command that connects" delivers it.

Answers: ``ok`` (``duplicate: true`` included: the server already had it) and refusals both
remove the entry — a refusal means nothing was recorded; ``unavailable`` and friends are
retried after a backoff; an authentication error stops everything and keeps the entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from clients.cli.errors import RETRY_LATER, AuthError, CliError, ConnectionLost
from clients.cli.outbox import OutboxEntry, OutboxFile
from clients.cli.protocol import backoff_delay

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
Submitted = tuple[OutboxEntry, "asyncio.Future[dict[str, Any]]"]
# (entry, the ok reply's fields or the refusal, whether this process submitted it)
OutboxHandler = Callable[[OutboxEntry, "dict[str, Any] | CliError", bool], None]


class Delivery:
    def __init__(self, outbox: OutboxFile, on_settled: OutboxHandler | None = None) -> None:
        self.outbox = outbox
        self._on_settled = on_settled
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._mine: dict[str, Submitted] = {}
        self._fatal: CliError | None = None

    def submit(self, op: str, fields: dict[str, Any]) -> Submitted:
        """A change: into the outbox file now, sent when connected.  The future gets the
        ``ok`` reply's fields, or the :class:`CliError` of a refusal."""
        entry = OutboxEntry.new(op, fields)
        self.outbox.add(entry)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen by someone
        self._mine[entry.client_msg_id] = (entry, future)
        self._idle.clear()
        self._changed.set()
        return entry, future

    async def drained(self) -> None:
        """Until a flush found nothing left to send (or delivery stopped)."""
        await self._idle.wait()
        if self._fatal is not None:
            raise self._fatal

    def stop(self, exc: CliError) -> None:
        self._fatal = exc
        self._idle.set()
        for _entry, future in self._mine.values():
            if not future.done():
                future.set_exception(exc)

    def _next_entry(self) -> OutboxEntry | None:
        on_disk = self.outbox.pending()
        if on_disk:
            return on_disk[0]
        # Ours, but removed from the file by another process that sent it: send it again
        # to learn its outcome (the server answers duplicate: true).
        return next((entry for entry, _ in self._mine.values()), None)

    async def flush(self, call: Call) -> None:
        """Send pending entries over one connection, until it drops (``AuthError`` ends it)."""
        attempt = 0
        while True:
            self._changed.clear()
            entry = self._next_entry()
            if entry is None:
                self._idle.set()
                await self._changed.wait()
                continue
            self._idle.clear()
            try:
                reply = await call(entry.op, entry.request())
            except ConnectionLost:
                return
            except AuthError:
                raise
            except CliError as exc:
                if exc.code in RETRY_LATER:
                    await asyncio.sleep(backoff_delay(attempt))
                    attempt += 1
                    continue
                self._settle(entry, exc)  # refused: nothing was recorded, nothing to retry
                continue
            attempt = 0
            self._settle(entry, reply)

    def _settle(self, entry: OutboxEntry, result: dict[str, Any] | CliError) -> None:
        self.outbox.remove(entry.client_msg_id)
        mine = self._mine.pop(entry.client_msg_id, None)
        if mine is not None and not mine[1].done():
            if isinstance(result, CliError):
                mine[1].set_exception(result)
            else:
                mine[1].set_result(result)
        if self._on_settled is not None:
            self._on_settled(entry, result, mine is not None)
