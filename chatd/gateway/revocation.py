"""Closing live sessions whose token stopped being valid, once a second for all of them.

A token can stop being valid behind a connection's back: ``POST /v1/auth/logout`` from another
device, or ``chatd user disable`` run by an admin in another process (it revokes the user's
tokens in the database).  Logout on this server closes its sockets at once (``on_revoke``);
everything else is found here: every second one read asks the store which of the tokens that
have live sessions are no longer valid, and those sessions are closed with the code that says
why (4003 logged out, 4004 account disabled, 4002 expired).

This replaced a re-read of the token and the user on every request (at most once a second per
connection), which cost two store reads per request and saturated the read pool at 1,000
clients (see docs/performance.md); the staleness bound — one second — is the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from chatd.core.errors import AuthError, ChatdError, UserDisabledError
from chatd.gateway import protocol as p
from chatd.gateway.error_table import close_code_for
from chatd.gateway.hub import Hub
from chatd.services.auth import AuthService
from chatd.store.contract import Store

log = logging.getLogger("chatd.gateway.revocation")
SWEEP_SECONDS = 1.0


class RevocationSweeper:
    def __init__(
        self,
        store: Store,
        hub: Hub,
        auth: AuthService,
        clock_ms: Callable[[], int],
        every: float = SWEEP_SECONDS,
    ) -> None:
        self._store = store
        self._hub = hub
        self._auth = auth
        self._clock_ms = clock_ms
        self._every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-revocation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)  # a period, not a synchronisation
            try:
                await self.sweep()
            except ChatdError as exc:  # the store is closing or busy: try again next period
                log.warning("revocation sweep skipped: %s", exc.code)

    async def sweep(self) -> int:
        """Close the sessions of every token that is no longer valid; how many tokens."""
        live = self._hub.live_tokens()
        if not live:
            return 0
        invalid = await self._store.invalid_session_tokens(live, self._clock_ms())
        for token_hash in invalid:
            self._hub.close_token(token_hash, await self._close_code(token_hash))
        return len(invalid)

    async def _close_code(self, token_hash: bytes) -> p.CloseCode:
        """Why the token is invalid (rare path: one read per closed token)."""
        try:
            await self._auth.revalidate(token_hash)
        except UserDisabledError:
            return p.CloseCode.USER_DISABLED
        except AuthError as exc:
            return close_code_for(exc)
        return p.CloseCode.LOGGED_OUT  # valid again a moment later: close to be safe
