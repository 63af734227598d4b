"""Pure parts: the session state machine, cursors, rate limit, hub queues, auth helpers."""

from __future__ import annotations

import asyncio

import pytest

from chatd.core.errors import (
    TermsNotAcceptedError,
    TokenExpiredError,
    TokenRevokedError,
    UnauthenticatedError,
    UserDisabledError,
)
from chatd.core.records import SessionToken, User, UserProfile
from chatd.gateway import protocol as p
from chatd.gateway.hub import Hub
from chatd.gateway.session import Delivery, Session, SessionStateError, State, TokenBucket
from chatd.services.auth import Principal, check_session, new_token, token_digest

PROFILE = UserProfile("A", "B")


def principal(terms: bool = True, user_id: int = 1) -> Principal:
    return Principal(user_id, "a", PROFILE, b"h" * 32, 10**13, terms)


# ----------------------------------------------------------------------------- session


def test_session_goes_awaiting_auth_open_closed_only() -> None:
    session = Session()
    assert session.state is State.AWAITING_AUTH
    with pytest.raises(SessionStateError):
        session.admit(p.Ping(1))  # nothing but auth before auth
    session.admit(p.Auth(1, "t"))
    with pytest.raises(SessionStateError):
        _ = session.user_id
    session.authenticated(principal(), 0.0)
    assert session.state is State.OPEN and session.user_id == 1
    with pytest.raises(SessionStateError) as twice:
        session.admit(p.Auth(2, "t"))
    assert twice.value.code == "invalid_state"
    with pytest.raises(SessionStateError):
        session.authenticated(principal(), 0.0)
    with pytest.raises(SessionStateError):
        session.refreshed(principal(user_id=2), 1.0)
    session.close()
    assert session.state is State.CLOSED
    with pytest.raises(SessionStateError):
        session.admit(p.Ping(1))
    with pytest.raises(SessionStateError):
        session.sync_done()


def test_terms_gate_lets_only_acceptance_and_ping_through() -> None:
    session = Session()
    session.authenticated(principal(terms=False), 0.0)
    session.admit(p.Ping(1))
    session.admit(p.AcceptTerms(2, "v"))
    for request in (p.ListConversations(3), p.Sync(4, ()), p.Send(5, "c", 1, "t", None)):
        with pytest.raises(TermsNotAcceptedError):
            session.admit(request)
    session.refreshed(principal(terms=True), 1.0)
    session.admit(p.ListConversations(3))


def test_token_is_rechecked_at_most_every_interval() -> None:
    session = Session()
    session.authenticated(principal(), 10.0)
    assert not session.needs_check(10.5, 1.0)
    assert session.needs_check(11.0, 1.0)


def test_cursors_send_in_order_drop_duplicates_and_detect_gaps() -> None:
    session = Session()
    session.authenticated(principal(), 0.0)
    assert session.on_event(1, 1) is Delivery.DROP  # no live push before the first sync
    session.resume_from(1, 3)
    session.sync_done()
    assert session.on_event(1, 3) is Delivery.DROP
    assert session.on_event(1, 4) is Delivery.SEND
    assert session.delivered(1, 4) and not session.delivered(1, 4)
    assert session.on_event(1, 6) is Delivery.CATCH_UP
    assert session.on_event(2, 1) is Delivery.SEND  # a conversation created since the sync
    # New to this session from a later seq: added to it, or its first pushes were lost on
    # the broker; either way the client gets it from the start the store shows it.
    assert session.on_event(3, 7) is Delivery.CATCH_UP
    assert session.cursor(1) == 4 and session.cursor(9) == 0


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.allow(0.0) for _ in range(5)] == [True, True, True, False, False]
    assert bucket.strikes == 2
    assert bucket.allow(0.5) and bucket.strikes == 0  # one token back after half a second
    assert not bucket.allow(0.5)


# ----------------------------------------------------------------------------- hub


async def test_hub_overflow_fails_the_subscription_and_frees_its_queue() -> None:
    hub = Hub(queue_size=3)
    async with hub.subscribe(1, b"t") as slow, hub.subscribe(1, b"u") as fast:
        for i in range(3):
            assert hub.deliver(1, i) == 2
            fast.queue.get_nowait()
        assert hub.deliver(1, "overflow") == 1  # only the fast one took it
        assert slow.close_code is p.CloseCode.SLOW_CONSUMER and slow.closed.is_set()
        assert slow.queue.empty()  # memory released at once
        assert not slow.offer("late")
        assert fast.close_code is None
        assert hub.sessions(1) == 2
    assert hub.sessions() == 0


async def test_hub_always_unsubscribes_and_closes_by_token() -> None:
    hub = Hub(queue_size=10)
    with pytest.raises(RuntimeError):
        async with hub.subscribe(1, b"t"):
            assert hub.sessions(1) == 1
            raise RuntimeError("connection crashed")
    assert hub.sessions() == 0
    async with (
        hub.subscribe(1, b"t") as a,
        hub.subscribe(1, b"t") as b,
        hub.subscribe(1, b"other") as c,
        hub.subscribe(2, b"x") as d,
    ):
        assert hub.close_token(b"t", p.CloseCode.LOGGED_OUT) == 2
        assert a.close_code == b.close_code == p.CloseCode.LOGGED_OUT
        assert c.close_code is None and d.close_code is None
        a.fail(p.CloseCode.IDLE_TIMEOUT)  # the first reason wins
        assert a.close_code is p.CloseCode.LOGGED_OUT
        assert hub.deliver(1, "x", exclude=c.id) == 0
        assert hub.close_all(p.CloseCode.GOING_AWAY) == 4
        await asyncio.wait_for(d.closed.wait(), 1)


# ----------------------------------------------------------------------------- auth helpers


def user(disabled: bool = False) -> User:
    return User(1, "a", "h", PROFILE, disabled, None, 0)


def test_check_session() -> None:
    live = SessionToken(b"h" * 32, 1, 0, 100)
    check_session(live, user(), 50)
    with pytest.raises(UnauthenticatedError):
        check_session(None, None, 50)
    with pytest.raises(UnauthenticatedError):
        check_session(SessionToken(b"h" * 32, 2, 0, 100), user(), 50)
    with pytest.raises(TokenRevokedError):
        check_session(SessionToken(b"h" * 32, 1, 0, 100, revoked_at=10), user(), 50)
    with pytest.raises(UserDisabledError):
        check_session(live, user(disabled=True), 50)
    with pytest.raises(TokenExpiredError):
        check_session(live, user(), 100)


def test_tokens_are_random_and_digested() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 43
    assert len(token_digest(a)) == 32 and token_digest(a) != token_digest(b)
