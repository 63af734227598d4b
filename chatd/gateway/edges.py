"""The server's edge: uvicorn's HTTP/1.1 protocol with a connection cap and head deadlines.

uvicorn (h11) closes a keep-alive connection that stays silent between two requests, but
arms nothing on a fresh connection, and a head that trickles in one byte at a time resets
its only timer: 40 trickling and 20 silent sockets stayed open indefinitely and, with the
file descriptors gone, ``/healthz`` and logins failed.  Its ``limit_concurrency`` answers 503
only once a head is complete, counts the idle sockets against the clients that have
something to ask, and does not look at WebSocket upgrades at all.

:func:`guarded_protocol` makes a subclass of uvicorn's :class:`H11Protocol` that applies the
rules of :mod:`chatd.gateway.admission` at the three moments that matter: a connection
accepted (:meth:`connection_made`: admit, evict the longest waiter, or refuse with 503), a
head complete or a response sent (wait no more / start waiting again), bytes received (the
idle deadline starts over, the head deadline does not).  A WebSocket upgrade hands the
transport to uvicorn's WebSocket protocol: it is then busy for good, still counted through
uvicorn's own set of connections, and its life is the session's (``CHATD_AUTH_TIMEOUT_SECONDS``,
``CHATD_WS_IDLE_SECONDS``, keepalive pings).

A stalled request *body* is the route's to cut, with an answer (:func:`chatd.gateway.http.
stalling`): only the route knows it is still reading.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from chatd.core.errors import UnavailableError
from chatd.gateway.admission import Admission, ConnectionGate, HeadDeadlines
from chatd.i18n import N_, Language

log = logging.getLogger("chatd.gateway.edges")

REFUSAL_LINGER_SECONDS = 1.0  # how long a refused connection's request is read and dropped
REFUSAL_LOG_SECONDS = 10.0
SERVER_FULL = N_("The server has too many open connections; retry in a moment.")


def refusal(lang: Language) -> bytes:
    """The whole 503 answer to a connection over the cap, in the server's default language
    (its request, and so its ``Accept-Language``, is not read)."""
    error = UnavailableError(SERVER_FULL)
    body = json.dumps({"code": error.code, "message": error.message_in(lang)}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "retry-after: 1\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a :class:`ConnectionGate` and :class:`HeadDeadlines`.

    The class attributes are set by :func:`guarded_protocol` on a subclass per server."""

    gate: ClassVar[ConnectionGate[GuardedH11Protocol]]
    deadlines: ClassVar[HeadDeadlines]
    refusal: ClassVar[bytes]
    last_refusal_logged: ClassVar[float] = float("-inf")

    _waiting = False
    _waiting_since = 0.0
    _last_byte = 0.0
    _timer: asyncio.TimerHandle | None = None
    _upgraded = False
    _refused = False

    # ------------------------------------------------------------------ asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        verdict = self.gate.arrive(self._open_besides_me())
        if verdict.admission is Admission.REFUSE:
            self._refuse()
            return
        if verdict.victim is not None:
            verdict.victim.evict()
        self._start_waiting()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the linger ends
        if self._waiting:
            self._last_byte = self.loop.time()
        super().data_received(data)
        self._follow()

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        self.gate.gone(self)
        super().connection_lost(exc)

    # ------------------------------------------------------------------ uvicorn's hooks

    def on_response_complete(self) -> None:
        self._stop_waiting()
        super().on_response_complete()  # may start a pipelined request
        self._follow()  # else: the next head's deadlines start now

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._upgraded = True
        self._stop_waiting()
        self.gate.gone(self)  # the WebSocket protocol owns the transport from here
        super().handle_websocket_upgrade(event)

    # ------------------------------------------------------------------ the rules applied

    def evict(self) -> None:
        """Close this connection, which was waiting for a head, to make room."""
        log.debug("closing a connection idle at the connection cap")
        self._stop_waiting()
        self.transport.close()

    def _open_besides_me(self) -> int:
        others = len(self.connections) - 1
        if others < self.gate.cap:
            return others  # the common case, counted without a walk
        # At the cap, connections already closing (evicted, timed out) do not count.
        return sum(
            1
            for c in self.connections
            if c is not self
            and getattr(c, "transport", None) is not None
            and not c.transport.is_closing()
        )

    def _refuse(self) -> None:
        log.warning(
            "connection refused: %d connections open (CHATD_MAX_CONNECTIONS)", self.gate.cap
        )
        self._refused = True
        self.connections.discard(self)  # never counted, never evicted: it is leaving
        self.transport.write(self.refusal)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        # Read what the client sends for a moment before closing: closing a socket with
        # unread data resets it, and the reset can destroy the answer on its way.
        self.loop.call_later(REFUSAL_LINGER_SECONDS, self.transport.close)

    def _serving(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _follow(self) -> None:
        """Wait for a head, or not, as the connection's state now says."""
        if self._upgraded or self._refused or self.transport.is_closing() or self._serving():
            self._stop_waiting()
        elif not self._waiting:
            self._start_waiting()

    def _start_waiting(self) -> None:
        now = self.loop.time()
        self._waiting, self._waiting_since, self._last_byte = True, now, now
        self.gate.waiting(self)
        self._arm(self.deadlines.next_check(0.0, 0.0))

    def _stop_waiting(self) -> None:
        self._waiting = False
        self.gate.busy(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        if not self._waiting or self.transport.is_closing():
            return
        now = self.loop.time()
        waited, silent = now - self._waiting_since, now - self._last_byte
        if self.deadlines.expired(waited, silent):
            log.debug("closing a connection whose request head did not come in time")
            self._stop_waiting()
            self.transport.close()
        else:
            self._arm(self.deadlines.next_check(waited, silent))


def guarded_protocol(
    *, max_connections: int, deadlines: HeadDeadlines, lang: Language
) -> type[GuardedH11Protocol]:
    """A protocol class for one server: its own gate, deadlines and refusal."""
    return type(
        "ChatdH11Protocol",
        (GuardedH11Protocol,),
        {
            "gate": ConnectionGate[GuardedH11Protocol](max_connections),
            "deadlines": deadlines,
            "refusal": refusal(lang),
        },
    )
