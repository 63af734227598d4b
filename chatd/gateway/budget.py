"""Bytes held for the sockets: each session's share and this node's total (pure, no I/O).

A frame is counted from the moment it is encoded for a session (a reply, a live push, a
state push, a catch-up or ``sync`` page) until the sender has written it to the socket.
Three rules keep one client from making the server hold memory without bound:

* **Per session** (``CHATD_WS_QUEUE_BYTES``): a frame that would take a session past its
  share is refused; the session is closed with 4005 ``slow_consumer``.
* **Back-pressure**: a session holding more than a quarter of its share
  (:attr:`QueueBudget.pause_at`) has its *requests* left unread until the sender has caught up
  (:meth:`QueueBudget.paused`).  Replies are what a client controls: it cannot grow the queue by
  asking faster than it reads.  Pushes cannot wait (one slow reader must not hold up the
  fan-out of everyone else), so they are what can overflow a session's share.
* **Per node** (``CHATD_WS_MEMORY_BYTES``): when a frame would take the node past its total,
  the session holding the most bytes is shed (closed 4005, its queue freed), then the next
  largest, until the frame fits.  We shed rather than make new frames wait: waiting would
  stop the fan-out (pushes cannot wait) or the requests of every client because of a few
  that do not read, while the largest holder is, by construction, the one furthest behind —
  a client that reconnects resumes with ``sync`` and loses nothing.

:class:`QueueBudget` only counts; the hub applies its verdicts (:mod:`chatd.gateway.hub`).
Invariants (tests/gateway/test_budget.py): every session holds at most ``per_session``,
the node at most ``total``, and the node's count is the sum of its sessions'.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

PAUSE_FRACTION = 4  # requests are left unread above 1/4 of a session's share


@dataclass(frozen=True, slots=True)
class Admission(Generic[K]):
    """The verdict on one frame: taken or not, and the sessions shed to make room (their
    bytes are already forgotten; the caller closes them)."""

    accepted: bool
    shed: tuple[K, ...] = ()
    node_full: bool = False  # the node's total, not the asker's share, shed them


class QueueBudget(Generic[K]):
    """Bytes held per session (keyed by ``K``) and in all, against two limits."""

    def __init__(self, per_session: int, total: int) -> None:
        if not 0 < per_session <= total:
            raise ValueError("a session's share is positive and at most the node's total")
        self.per_session = per_session
        self.total = total
        self.pause_at = per_session // PAUSE_FRACTION
        self.held_total = 0
        self._held: dict[K, int] = {}

    def held(self, key: K) -> int:
        return self._held.get(key, 0)

    def paused(self, key: K) -> bool:
        """True while ``key``'s requests should be left unread (its replies are unsent)."""
        return self._held.get(key, 0) > self.pause_at

    def admit(self, key: K, size: int) -> Admission[K]:
        """Count ``size`` more bytes for ``key`` if both limits allow, shedding the largest
        holders for room in the node's total.  Refused: ``key`` is over its share (then
        ``key`` is in ``shed``: its bytes are forgotten), or it was itself the largest."""
        if size < 0:
            raise ValueError("a frame has a size of zero or more")
        if self._held.get(key, 0) + size > self.per_session:
            self.forget(key)
            return Admission(False, (key,))
        shed: list[K] = []
        node_full = self.held_total + size > self.total
        while self.held_total + size > self.total and self._held:
            victim = max(self._held, key=self._held.__getitem__)
            self.forget(victim)
            shed.append(victim)
            if victim == key:
                return Admission(False, tuple(shed), node_full)
        if self.held_total + size > self.total:  # larger than the whole budget
            return Admission(False, tuple(shed), node_full)
        self._held[key] = self._held.get(key, 0) + size
        self.held_total += size
        return Admission(True, tuple(shed), node_full)

    def release(self, key: K, size: int) -> None:
        """``size`` bytes of ``key`` left for the socket (nothing if ``key`` was forgotten)."""
        held = self._held.get(key)
        if held is None:
            return
        freed = min(size, held)
        self._held[key] = held - freed
        self.held_total -= freed

    def forget(self, key: K) -> int:
        """``key`` closed: its bytes are freed; how many."""
        freed = self._held.pop(key, 0)
        self.held_total -= freed
        return freed

    def sessions(self) -> int:
        return len(self._held)
