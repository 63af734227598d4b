"""The dispatcher: a decoded request, past the password gate, runs its one service call.

No business rule lives here, and no store: each operation declares what it does in its
capability's module (:mod:`chatd.gateway.ops`), as one call to a service
(:mod:`chatd.services`) — changes through :class:`~chatd.services.messaging.Messaging`, the
one door that commits then publishes; reads through
:class:`~chatd.services.reading.Reading`; the inbox, sessions and the directory through
theirs.
"""

from __future__ import annotations

import time

from chatd.gateway.hub import Subscription
from chatd.gateway.ops.base import Call, Reply, Request
from chatd.gateway.session import Session
from chatd.services.container import Services


class Handlers:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def handle(self, session: Session, sub: Subscription, request: Request) -> Reply:
        if not request.password_free:
            await self._password_gate(session)
        return await request.run(Call(session, sub, self._services))

    async def _password_gate(self, session: Session) -> None:
        """After an administrator's reset, only ``ping`` passes until the password is changed
        (over HTTP: ``POST /v1/auth/password``).  A gated session re-reads its principal on
        each refused operation, so that the change, made on another connection, opens it."""
        principal = session.principal
        assert principal is not None
        if principal.password_change_required:
            principal = await self._services.auth.revalidate(principal.token_hash)
            session.refreshed(principal, time.monotonic())
            principal.require_usable()
