"""Contract: a user's live connections on every node (the per-user cap) and their logins
(device, last sighting, revoking all but one) — migration 8 on SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.core.records import LiveSession, SessionToken
from chatd.store.contract import Store
from tests.conftest import make_users

HOUR = 3_600_000


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def live(sid: str, user: int, token: str, at: int, node: str = "n1") -> LiveSession:
    return LiveSession(f"{node}.{sid}", node, user, digest(token), at)


async def test_the_cap_counts_live_connections_of_all_nodes(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    await store.create_session_token(SessionToken(digest("ta"), a, 0, 8 * HOUR))
    for i, node in enumerate(("n1", "n2", "n1")):
        connection = live(str(i), a, "ta", 100, node)
        assert await store.open_live_session(connection, cap=3, stale_before=0)
    assert not await store.open_live_session(live("x", a, "ta", 100, "n2"), cap=3, stale_before=0)
    # another user has their own count
    assert await store.open_live_session(live("y", b, "tb", 100), cap=3, stale_before=0)
    await store.close_live_sessions(["n1.0"])
    assert await store.open_live_session(live("x", a, "ta", 200, "n2"), cap=3, stale_before=0)
    assert await store.live_session_counts(a, 0) == {digest("ta"): 3}
    token = await store.find_session_token(digest("ta"))
    assert token is not None and token.last_seen_at == 200


async def test_a_dead_nodes_connections_stop_counting_and_a_stopping_node_forgets_its_own(
    store: Store,
) -> None:
    (a,) = await make_users(store, "alice")
    assert await store.open_live_session(live("1", a, "t", 1000, "dead"), cap=2, stale_before=0)
    assert await store.open_live_session(live("1", a, "t", 1000, "alive"), cap=2, stale_before=0)
    await store.refresh_live_sessions("alive", 5000)
    # 'dead' was not refreshed: older than the cutoff, it no longer counts
    assert await store.live_session_counts(a, 4000) == {digest("t"): 1}
    assert await store.open_live_session(live("2", a, "t", 6000, "alive"), cap=2, stale_before=4000)
    await store.end_node_sessions("alive")
    assert await store.live_session_counts(a, 0) == {}


async def test_two_nodes_racing_for_the_last_place_get_one(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    results = await asyncio.gather(
        *(
            store.open_live_session(live(str(i), a, "t", 10, f"n{i % 3}"), cap=4, stale_before=0)
            for i in range(12)
        )
    )
    assert sum(results) == 4
    assert await store.live_session_counts(a, 0) == {digest("t"): 4}


async def test_a_login_keeps_its_device_and_lists_only_live_tokens(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    await store.create_session_token(SessionToken(digest("1"), a, 10, 8 * HOUR, device="Firefox"))
    await store.create_session_token(SessionToken(digest("2"), a, 20, 8 * HOUR))
    await store.create_session_token(SessionToken(digest("old"), a, 1, 50))  # expired at 100
    await store.create_session_token(SessionToken(digest("3"), a, 30, 8 * HOUR))
    await store.create_session_token(SessionToken(digest("b"), b, 30, 8 * HOUR))
    await store.revoke_session_token(digest("3"), 40)
    listed = await store.list_session_tokens(a, 100)
    assert [(t.token_hash, t.device) for t in listed] == [
        (digest("1"), "Firefox"),
        (digest("2"), None),
    ]
    # every token not revoked yet (the expired one too: harmless), the kept one apart
    revoked = await store.revoke_other_session_tokens(a, digest("1"), 200)
    assert sorted(revoked) == sorted([digest("2"), digest("old")])
    assert await store.revoke_other_session_tokens(a, digest("1"), 300) == []
    assert [t.token_hash for t in await store.list_session_tokens(a, 400)] == [digest("1")]
    assert [t.token_hash for t in await store.list_session_tokens(b, 400)] == [digest("b")]


async def test_a_device_is_a_short_word_never_free_text(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    with pytest.raises(Exception):  # noqa: B017 - the backend's own constraint error
        await store.create_session_token(
            SessionToken(digest("x"), a, 0, HOUR, device="Dr Martin's phone; room 3")
        )


_EXAMPLES = itertools.count()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cap=st.integers(1, 4),
    steps=st.lists(
        st.tuples(st.booleans(), st.integers(0, 5), st.sampled_from("xyz")), max_size=25
    ),
)
async def test_never_more_live_connections_than_the_cap(
    store: Store, cap: int, steps: list[tuple[bool, int, str]]
) -> None:
    # One fresh user per example: id() of a list can come back once it is freed.
    (a,) = await make_users(store, f"cap{next(_EXAMPLES)}")
    await store.end_node_sessions("x")
    await store.end_node_sessions("y")
    await store.end_node_sessions("z")
    open_ids: set[str] = set()
    for opening, n, node in steps:
        sid = f"{node}.{a}.{n}"
        if opening and sid not in open_ids:
            ok = await store.open_live_session(
                LiveSession(sid, node, a, digest("t"), 1), cap=cap, stale_before=0
            )
            assert ok == (len(open_ids) < cap)
            if ok:
                open_ids.add(sid)
        elif not opening:
            await store.close_live_sessions([sid])
            open_ids.discard(sid)
        assert sum((await store.live_session_counts(a, 0)).values()) == len(open_ids) <= cap
