"""The in-process hub: one bounded outbound queue per connected session (design §5).

Like encode/broadcaster's ``_base.py``: :meth:`Hub.subscribe` is an async context manager
that registers a :class:`Subscription` and always unregisters it, however the connection
ends.  Everything a connection sends after its hello goes through its subscription's queue —
live events, replies, per-user state — and one sender task drains it, so one connection's
frames leave in one order.

Memory stays bounded whatever a client does: :meth:`Subscription.offer` never waits; when the
queue is full — in frames (``CHATD_WS_QUEUE``) or in bytes (``CHATD_WS_QUEUE_BYTES``, and the
node's ``CHATD_WS_MEMORY_BYTES``, :mod:`chatd.gateway.budget`) — the subscription is *failed*
with the ``slow_consumer`` close code, its queue is emptied at once, and the connection
closes; the client reconnects and resumes with ``sync``.  The connection's reader waits
(:meth:`Subscription.wait_drained`) rather than answer more requests while the replies already
due are unsent.  Logout and token expiry use the same path (:meth:`Hub.close_token`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from chatd.gateway.budget import QueueBudget
from chatd.gateway.wire import CloseCode

K = TypeVar("K")
log = logging.getLogger("chatd.gateway.hub")


@dataclass(frozen=True, slots=True)
class CloseAfterQueue:
    """Queued by :meth:`Subscription.finish`: the sender fails the subscription on reaching it."""

    code: CloseCode


def frame_bytes(item: object) -> int:
    """The bytes a queued item holds: an encoded frame, or a push carrying one in ``data``
    (a ``sync`` job or a close marker holds next to nothing)."""
    if isinstance(item, bytes):
        return len(item)
    data = getattr(item, "data", None)
    return len(data) if isinstance(data, bytes) else 0


class Subscription:
    """One connected session's outbound queue and close signal."""

    def __init__(
        self,
        session_id: str,
        user_id: int,
        token_hash: bytes,
        maxsize: int,
        budget: QueueBudget[Subscription] | None = None,
    ) -> None:
        self.id = session_id  # unique across nodes: a publication can name the session it spares
        self.user_id = user_id
        self.token_hash = token_hash
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self.closed = asyncio.Event()
        self.close_code: CloseCode | None = None
        self._budget: QueueBudget[Subscription] = budget or QueueBudget(2**62, 2**62)
        self._drained = asyncio.Event()
        self._drained.set()
        self.pause_frames = max(1, maxsize // 2)  # requests wait above half the frame queue

    def offer(self, item: object) -> bool:
        """Queue ``item`` without waiting; on overflow fail with ``slow_consumer``."""
        if self.close_code is not None:
            return False
        if not self.hold(frame_bytes(item)):
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.fail(CloseCode.SLOW_CONSUMER)
            return False
        return True

    def hold(self, size: int) -> bool:
        """Count ``size`` bytes encoded for this session (queued, or written by the sender
        itself); False if that took it, or the node, past its budget: it is then failed,
        and so is every session shed to make room."""
        if self.close_code is not None:
            return False
        admission = self._budget.admit(self, size)
        if admission.node_full:  # an operator's matter: CHATD_WS_MEMORY_BYTES was reached
            log.warning(
                "queues full (%d bytes): closing %d connection(s), the largest first",
                self._budget.total,
                len(admission.shed),
            )
        for shed in admission.shed:
            shed.fail(CloseCode.SLOW_CONSUMER)
        if not admission.accepted:
            self.fail(CloseCode.SLOW_CONSUMER)
            return False
        self._update_drained()
        return True

    def sent(self, size: int) -> None:
        """``size`` bytes counted by :meth:`hold` were written to the socket."""
        self._budget.release(self, size)
        self._update_drained()

    @property
    def held_bytes(self) -> int:
        return self._budget.held(self)

    def paused(self) -> bool:
        """Whether the session's requests should wait: its replies are unsent beyond the
        threshold, in bytes or in frames."""
        return self._budget.paused(self) or self.queue.qsize() >= self.pause_frames

    async def wait_drained(self) -> None:
        """Until :meth:`paused` is false (or the session failed)."""
        while self.paused() and self.close_code is None:
            self._drained.clear()
            await self._drained.wait()

    def _update_drained(self) -> None:
        if not self.paused():
            self._drained.set()

    def finish(self, code: CloseCode) -> None:
        """Close this session with ``code`` once what is already queued has been sent (a
        rate-limited client still gets the replies of every request it sent before)."""
        if self.close_code is None:
            self.offer(CloseAfterQueue(code))

    def fail(self, code: CloseCode) -> None:
        """Close this session with ``code`` (the first reason wins) and free its queue."""
        if self.close_code is not None:
            return
        self.close_code = code
        while not self.queue.empty():
            self.queue.get_nowait()
        self._budget.forget(self)
        self._drained.set()
        self.closed.set()

    def ended(self) -> None:
        """The connection is over: whatever it still held is freed."""
        self._budget.forget(self)


class Hub:
    def __init__(
        self,
        queue_size: int,
        queue_bytes: int = 2**62,
        memory_bytes: int = 2**62,
        *,
        node: str | None = None,
    ) -> None:
        self.queue_size = queue_size
        self.budget: QueueBudget[Subscription] = QueueBudget(queue_bytes, memory_bytes)
        # This node (CHATD_NODE_ID, else random): session ids are unique across nodes.
        self.node = node or uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._by_user: dict[int, set[Subscription]] = {}
        self._by_token: dict[bytes, set[Subscription]] = {}

    @asynccontextmanager
    async def subscribe(self, user_id: int, token_hash: bytes) -> AsyncIterator[Subscription]:
        sub = Subscription(
            f"{self.node}.{next(self._ids)}", user_id, token_hash, self.queue_size, self.budget
        )
        self._by_user.setdefault(user_id, set()).add(sub)
        self._by_token.setdefault(token_hash, set()).add(sub)
        try:
            yield sub
        finally:
            sub.ended()
            _discard(self._by_user, user_id, sub)
            _discard(self._by_token, token_hash, sub)

    def deliver(self, user_id: int, item: object, exclude: str | None = None) -> int:
        """Offer ``item`` to every session of the user but the one whose id is ``exclude``;
        how many accepted it."""
        accepted = 0
        for sub in tuple(self._by_user.get(user_id, ())):
            if sub.id != exclude and sub.offer(item):
                accepted += 1
        return accepted

    def live_tokens(self) -> list[bytes]:
        """The token digests that have at least one live session."""
        return list(self._by_token)

    def close_token(self, token_hash: bytes, code: CloseCode) -> int:
        subs = tuple(self._by_token.get(token_hash, ()))
        for sub in subs:
            sub.fail(code)
        return len(subs)

    def close_user(self, user_id: int, code: CloseCode) -> int:
        subs = tuple(self._by_user.get(user_id, ()))
        for sub in subs:
            sub.fail(code)
        return len(subs)

    def close_all(self, code: CloseCode) -> int:
        subs = [sub for subs in self._by_user.values() for sub in subs]
        for sub in subs:
            sub.fail(code)
        return len(subs)

    def paused_sessions(self) -> int:
        """How many sessions have their requests waiting for their replies to leave."""
        return sum(1 for subs in self._by_user.values() for sub in subs if sub.paused())

    def sessions(self, user_id: int | None = None) -> int:
        if user_id is not None:
            return len(self._by_user.get(user_id, ()))
        return sum(len(subs) for subs in self._by_user.values())


def _discard(index: dict[K, set[Subscription]], key: K, sub: Subscription) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]
