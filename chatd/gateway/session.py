"""Per-connection state as plain code (the h11 ``_state.py`` habit): no I/O, no clock.

A connection goes ``AWAITING_AUTH → OPEN → CLOSED``; any other transition raises
:class:`SessionStateError`, which is also a client error (``invalid_state``) so that a second
``auth`` is answered, not crashed on.  In ``OPEN``, :meth:`Session.admit` applies the terms
gate: until the current terms of use are accepted only ``accept_terms`` and ``ping`` pass.

The session also keeps, per conversation, the last seq it delivered (its *cursor*), which is
how the connection guarantees "in seq order, exactly once, no silent gap" whatever the timing
of live pushes and resume pages: :meth:`Session.on_event` says whether a pushed event is sent
as is, dropped as already delivered, or reveals a gap that must first be filled from the store.
Live pushes are only delivered after the client's first ``sync``, which sets the cursors.

:class:`TokenBucket` is the per-connection rate limit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from chatd.core.accounts import Principal
from chatd.core.errors import InvalidStateError, TermsNotAcceptedError
from chatd.core.ids import UserId
from chatd.i18n import DEFAULT_LANGUAGE, N_, Language


class Admittable(Protocol):
    """What the session reads of a request: its class flags (:mod:`chatd.gateway.ops.base`)."""

    @property
    def opens_session(self) -> bool: ...

    @property
    def terms_free(self) -> bool: ...


class State(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    OPEN = "open"
    CLOSED = "closed"


class Delivery(enum.Enum):
    SEND = "send"  # the next event of the conversation for this client
    DROP = "drop"  # already delivered (or live pushes not started yet)
    CATCH_UP = "catch_up"  # a gap: read the missing events from the store first


class SessionStateError(InvalidStateError):
    pass


ALREADY_AUTHENTICATED = N_("This connection is already authenticated.")


@dataclass(slots=True)
class Session:
    state: State = State.AWAITING_AUTH
    principal: Principal | None = None
    checked_at: float = 0.0  # when the token was last checked against the store
    synced: bool = False
    cursors: dict[int, int] = field(default_factory=dict)
    # What the client asked for (``auth``'s ``lang``, else its Accept-Language), and the
    # server's default: the account's own choice comes first (:attr:`language`).
    requested_language: Language | None = None
    default_language: Language = DEFAULT_LANGUAGE

    @property
    def language(self) -> Language:
        """The language this session's sentences are written in."""
        chosen = self.principal.language if self.principal is not None else None
        return chosen or self.requested_language or self.default_language

    # ------------------------------------------------------------------ transitions

    def _expect(self, *states: State) -> None:
        if self.state not in states:
            if self.state is State.AWAITING_AUTH:
                sentence = N_("Log in first: this connection is not authenticated yet.")
            elif self.state is State.OPEN:
                sentence = ALREADY_AUTHENTICATED
            else:
                sentence = N_("This connection is closed.")
            raise SessionStateError(sentence, state=self.state.value)

    def authenticated(self, principal: Principal, now: float) -> None:
        self._expect(State.AWAITING_AUTH)
        self.state = State.OPEN
        self.principal = principal
        self.checked_at = now

    def refreshed(self, principal: Principal, now: float) -> None:
        """The token was checked again (terms may have been accepted meanwhile)."""
        self._expect(State.OPEN)
        if self.principal is not None and principal.user_id != self.principal.user_id:
            raise SessionStateError(N_("A session cannot change user."))
        self.principal = principal
        self.checked_at = now

    def close(self) -> None:
        self.state = State.CLOSED

    @property
    def user_id(self) -> UserId:
        self._expect(State.OPEN)
        assert self.principal is not None
        return UserId(self.principal.user_id)  # where a connection's user id is born

    # ------------------------------------------------------------------ requests

    def admit(self, request: Admittable) -> None:
        """Raise unless ``request`` may run now."""
        if request.opens_session:
            if self.state is State.OPEN:
                raise SessionStateError(ALREADY_AUTHENTICATED)
            self._expect(State.AWAITING_AUTH)
            return
        self._expect(State.OPEN)
        assert self.principal is not None
        if not self.principal.terms_accepted and not request.terms_free:
            raise TermsNotAcceptedError()

    def needs_check(self, now: float, every: float) -> bool:
        return now - self.checked_at >= every

    # ------------------------------------------------------------------ delivery

    def on_event(self, conv: int, seq: int) -> Delivery:
        if not self.synced or self.state is not State.OPEN:
            return Delivery.DROP
        # A conversation the session has no cursor for is one the user was not in when the
        # client synced (created since, or they were added): everything they may see of it
        # is new to the client, from its first visible seq.  Only seq 1 can be that without
        # a look at the store; a later first push (they were added, or the earlier
        # publications were lost on the way) is a catch-up from the start.
        cursor = self.cursors.get(conv, 0)
        if seq == cursor + 1:
            return Delivery.SEND
        if seq <= cursor:
            return Delivery.DROP
        return Delivery.CATCH_UP

    def delivered(self, conv: int, seq: int) -> bool:
        """Record that ``seq`` was sent; False (send nothing) if it was already."""
        cursor = self.cursors.get(conv)
        if cursor is not None and seq <= cursor:
            return False
        self.cursors[conv] = seq
        return True

    def resume_from(self, conv: int, seq: int) -> None:
        """The client holds ``conv`` up to ``seq`` (its word in ``sync``)."""
        self.cursors[conv] = seq

    def cursor(self, conv: int) -> int:
        return self.cursors.get(conv, 0)

    def sync_done(self) -> None:
        self._expect(State.OPEN)
        self.synced = True


@dataclass(slots=True)
class TokenBucket:
    """``rate`` requests per second sustained, ``burst`` at once.  ``strikes`` counts the
    refusals since the last accepted request, so that a client that keeps hammering can be
    disconnected rather than answered forever."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0
    strikes: int = 0

    def allow(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.strikes = 0
            return True
        self.strikes += 1
        return False
