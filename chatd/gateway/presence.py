"""This node's share of the per-user cap on live connections (``CHATD_SESSIONS_PER_USER``).

Every connection that authenticated is recorded through the sessions service
(:mod:`chatd.services.sessions`) before its ``hello``, and forgotten when it ends; a
connection over the cap is refused (4008 ``too_many_sessions``).  A heartbeat task refreshes
this node's connections in the store every :data:`~chatd.services.sessions.HEARTBEAT_MS`, so
that the rows of a node that dies stop counting; stopping cleanly forgets them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from chatd.core.accounts import Principal
from chatd.core.errors import ChatdError
from chatd.gateway.hub import Subscription
from chatd.services.sessions import HEARTBEAT_MS, Sessions

log = logging.getLogger("chatd.gateway.presence")


class Presence:
    def __init__(
        self, sessions: Sessions, node: str, per_user: int, connected: Callable[[], int]
    ) -> None:
        self._sessions = sessions
        self._node = node
        self.per_user = per_user
        self._connected = connected  # how many connections this node holds now
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-presence")

    async def forget_previous_life(self) -> None:
        """A node restarted under the same ``CHATD_NODE_ID`` (after a kill -9) holds none of
        the connections its rows list: they stop counting now, not when they go stale.
        (Two live nodes never share an id: docs/architecture.md.)"""
        with contextlib.suppress(ChatdError):
            await self._sessions.end_node(self._node)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        with contextlib.suppress(ChatdError):  # the store is already closing
            await self._sessions.end_node(self._node)

    async def admit(self, principal: Principal, sub: Subscription) -> None:
        """Record ``sub``'s connection, or raise TooManySessionsError."""
        await self._sessions.admit(principal, sub.id, self._node, self.per_user)

    async def release(self, sub: Subscription) -> None:
        try:
            await self._sessions.release(sub.id)
        except ChatdError as exc:  # stopping: stop() forgets the node's rows
            log.debug("live session not released: %s", exc.code)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_MS / 1000)  # a period, not a synchronisation
            if not self._connected():  # nothing to refresh: no write on an idle server
                continue
            try:
                await self._sessions.heartbeat(self._node)
            except ChatdError as exc:
                log.warning("live sessions heartbeat skipped: %s", exc.code)
