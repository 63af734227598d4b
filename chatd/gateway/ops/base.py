"""What every operation of ``/v1/ws`` is: a request that reads and validates its own fields,
and the one service call that answers it.

An operation is declared once, in the module of its capability (:mod:`.session`,
:mod:`.conversations`, :mod:`.inbox`, :mod:`.directory`): its op name, its fields and their
limits (:meth:`Request.parse`), when it may run (the class flags), and what it does
(:meth:`Request.run`, one call to a service).  :mod:`chatd.gateway.protocol` decodes frames
with the registry of :mod:`chatd.gateway.ops`; the connection runs what it decoded.  Adding an
op touches its capability's module and nothing else.

Parsing is pure.  ``run`` receives the services through :class:`Call`; they are imported
for the type checker only, so that decoding loads no store, broker or crypto library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

from chatd.core.clock import wall_clock_ms
from chatd.gateway.wire import Fields

if TYPE_CHECKING:
    from chatd.gateway.hub import Subscription
    from chatd.gateway.session import Session
    from chatd.services.container import Services


# The gateway reads the time only to stamp replies and check session expiry.
now_ms = wall_clock_ms


@dataclass(frozen=True, slots=True)
class SyncJob:
    """A ``sync`` request, run by the connection's sender so that its events, the live
    pushes and the final ``ok`` leave in one order."""

    rid: int
    positions: dict[int, int]
    epoch_changed: bool = False  # the client's seqs were of another epoch: ignored
    # (conv, seq) of each entry that carried the hash the client holds there: the ``ok``
    # tells the log's hash at that seq and the head (``heads``, protocol §9.2).
    checks: tuple[tuple[int, int], ...] = ()


Reply = bytes | SyncJob


@dataclass(frozen=True, slots=True)
class Call:
    """What an operation runs with: the session that sent it, its outbound queue (its id
    names it to the broker), and the services."""

    session: Session
    sub: Subscription
    services: Services


class Request:
    """One operation's request.  Subclasses are frozen dataclasses whose first field is
    ``rid``; they set :attr:`op` and override :meth:`parse` and :meth:`run`."""

    op: ClassVar[str]
    opens_session: ClassVar[bool] = False  # the first frame of a connection (only ``auth``)
    terms_free: ClassVar[bool] = False  # may run before the terms of use are accepted
    password_free: ClassVar[bool] = False  # may run behind the password gate (after a reset)

    rid: int

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        """The request read from ``f``, or the ValidationError that says what is wrong."""
        raise NotImplementedError

    async def run(self, call: Call) -> Reply:
        """Answer the request: one service call, its result encoded."""
        raise NotImplementedError
