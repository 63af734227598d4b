"""Which connection to let in at the connection cap, and when one has waited too long.

Plain rules, no I/O: :mod:`chatd.gateway.edges` applies them to uvicorn's connections.

**The cap.**  Every open connection (HTTP and WebSocket) holds a file descriptor, and a process
has a bounded number of them: without a cap, idle sockets exhaust them and ``/healthz`` and
logins fail.  At the cap (``CHATD_MAX_CONNECTIONS``) a new connection either *evicts* the
connection that has waited longest for a request head — a silent or trickling socket, or a
keep-alive connection between two requests, neither of which has anything in progress — or,
when every open connection is busy (a request being served, a WebSocket session), it is
*refused* with 503.  Eviction is what keeps the service reachable while hostile sockets are
held open: they cannot hold a slot against a client that has something to ask.

**The deadlines.**  A connection waiting for a request head is closed when it has sent no byte
for ``CHATD_HTTP_IDLE_SECONDS``, or when its head is not complete ``CHATD_HTTP_HEAD_SECONDS``
after it began waiting (slow-loris: one byte now and then resets no deadline here).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Admission(enum.Enum):
    ADMIT = "admit"
    EVICT = "evict"  # admit, after closing :attr:`Verdict.victim`
    REFUSE = "refuse"  # answer 503 and close


@dataclass(frozen=True, slots=True)
class Verdict(Generic[K]):
    admission: Admission
    victim: K | None = None


class ConnectionGate(Generic[K]):
    """The connections waiting for a request head, oldest first, and the cap.

    The caller says when a connection starts waiting (:meth:`waiting`: accepted, or its last
    response sent), when it is busy (:meth:`busy`: a head arrived, or it became a WebSocket)
    and when it is gone (:meth:`gone`); it asks :meth:`arrive` for every new connection, with
    the number of connections open and not already closing."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("the connection cap must be positive")
        self.cap = cap
        # Insertion order is waiting order: a dict is an ordered set.
        self._waiting: dict[K, None] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def is_waiting(self, key: K) -> bool:
        return key in self._waiting

    def oldest_waiting(self) -> K | None:
        return next(iter(self._waiting), None)

    def arrive(self, open_now: int) -> Verdict[K]:
        """Whether a new connection may come in while ``open_now`` others are open."""
        if open_now < self.cap:
            return Verdict(Admission.ADMIT)
        victim = self.oldest_waiting()
        if victim is None:
            return Verdict(Admission.REFUSE)
        del self._waiting[victim]  # the caller closes it
        return Verdict(Admission.EVICT, victim)

    def waiting(self, key: K) -> None:
        """``key`` waits for a request head from now on (the youngest waiter)."""
        self._waiting.pop(key, None)
        self._waiting[key] = None

    def busy(self, key: K) -> None:
        self._waiting.pop(key, None)

    def gone(self, key: K) -> None:
        self._waiting.pop(key, None)


@dataclass(frozen=True, slots=True)
class HeadDeadlines:
    """How long a connection may wait before its request head is complete."""

    idle_seconds: float  # with no byte received
    head_seconds: float  # in all, however the bytes trickle

    def expired(self, waited: float, silent: float) -> bool:
        """Whether a connection that began waiting ``waited`` seconds ago, and last sent a
        byte ``silent`` seconds ago, is to be closed."""
        return waited >= self.head_seconds or silent >= self.idle_seconds

    def next_check(self, waited: float, silent: float) -> float:
        """Seconds from now until :meth:`expired` may first be true."""
        return max(0.0, min(self.head_seconds - waited, self.idle_seconds - silent))
