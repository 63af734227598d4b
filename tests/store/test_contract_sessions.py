"""Contract: login tokens, read markers, inbox rows and event audiences (the gateway's needs).

The leaving rules on these read paths follow Matrix SyTest's leaving tests: a former member
keeps what they could see up to their ``left`` event, and nothing after it reaches them — no
later name, member, preview, unread message or push.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from chatd.core.errors import ConversationNotFound
from chatd.core.events import EventKind
from chatd.core.records import SessionToken
from chatd.store.contract import Store
from tests.conftest import add_member, create_conv, leave, make_users, post, rename
from tests.store.conftest import StoreFactory

HOUR = 3_600_000


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# ----------------------------------------------------------------------------- tokens


async def test_tokens_are_found_by_digest_and_revoked_once(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    token = SessionToken(digest("t1"), a, 1000, 1000 + 8 * HOUR)
    await store.create_session_token(token)
    assert await store.find_session_token(digest("t1")) == token
    assert await store.find_session_token(digest("other")) is None
    assert await store.revoke_session_token(digest("t1"), 2000) is True
    assert await store.revoke_session_token(digest("t1"), 3000) is False
    found = await store.find_session_token(digest("t1"))
    assert found is not None and found.revoked_at == 2000
    assert await store.revoke_session_token(digest("never"), 2000) is False


async def test_revoking_a_user_revokes_only_their_live_tokens(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    for name, user in (("a1", a), ("a2", a), ("b1", b)):
        await store.create_session_token(SessionToken(digest(name), user, 0, 8 * HOUR))
    await store.revoke_session_token(digest("a2"), 5)
    assert await store.revoke_user_tokens(a, 10) == 1
    a1 = await store.find_session_token(digest("a1"))
    a2 = await store.find_session_token(digest("a2"))
    b1 = await store.find_session_token(digest("b1"))
    assert a1 is not None and a1.revoked_at == 10
    assert a2 is not None and a2.revoked_at == 5  # revoked once, never re-stamped
    assert b1 is not None and b1.revoked_at is None


async def test_invalid_session_tokens_names_revoked_expired_disabled_and_unknown(
    store: Store,
) -> None:
    a, b = await make_users(store, "alice", "bob")
    tokens = {name: digest(name) for name in ("live", "revoked", "expired", "disabled")}
    await store.create_session_token(SessionToken(tokens["live"], a, 0, 8 * HOUR))
    await store.create_session_token(SessionToken(tokens["revoked"], a, 0, 8 * HOUR))
    await store.create_session_token(SessionToken(tokens["expired"], a, 0, 100))
    await store.create_session_token(SessionToken(tokens["disabled"], b, 0, 8 * HOUR))
    await store.revoke_session_token(tokens["revoked"], 50)
    await store.set_user_disabled(b, True)
    unknown = digest("never issued")
    invalid = await store.invalid_session_tokens([*tokens.values(), unknown], now_ms=1000)
    assert invalid == {tokens["revoked"], tokens["expired"], tokens["disabled"], unknown}
    assert await store.invalid_session_tokens([tokens["live"]], now_ms=1000) == set()
    assert await store.invalid_session_tokens([], now_ms=1000) == set()


async def test_purge_deletes_only_tokens_expired_before_the_cutoff(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    await store.create_session_token(SessionToken(digest("old"), a, 0, 100))
    await store.create_session_token(SessionToken(digest("new"), a, 0, 10_000))
    assert await store.purge_session_tokens(5_000) == 1
    assert await store.find_session_token(digest("old")) is None
    assert await store.find_session_token(digest("new")) is not None


# ----------------------------------------------------------------------------- audience


async def test_audience_follows_membership_intervals(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b], first="hi")).conv_id  # 1 created, 2 message
    await add_member(store, conv, a, c)  # 3 joined c
    await leave(store, conv, b)  # 4 left b
    await post(store, conv, a, "after bob")  # 5
    await add_member(store, conv, c, b)  # 6 joined b again
    await post(store, conv, b, "back")  # 7
    audience = await store.audience(conv, 1, 7)
    assert audience == {
        1: {a, b},
        2: {a, b},
        3: {a, b, c},  # the added user gets their own joined event
        4: {a, b, c},  # the leaver gets their own left event…
        5: {a, c},  # …and nothing after it
        6: {a, b, c},
        7: {a, b, c},
    }
    assert await store.audience(conv, 5, 5) == {5: {a, c}}


# ----------------------------------------------------------------------------- read markers


async def test_read_marker_moves_forward_only_and_counts_others_messages(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b], first="a1")).conv_id  # 1, 2
    await post(store, conv, b, "b1")  # 3
    await post(store, conv, b, "b2")  # 4
    await post(store, conv, a, "a2")  # 5
    state = await store.mark_read(a, conv, 0)
    assert (state.read_seq, state.unread) == (0, 2)  # a's own messages never count
    state = await store.mark_read(a, conv, 3)
    assert (state.read_seq, state.unread) == (3, 1)
    state = await store.mark_read(a, conv, 2)  # older: stays at 3
    assert (state.read_seq, state.unread) == (3, 1)
    state = await store.mark_read(a, conv, 10**9)  # clamped to the last seq
    assert (state.read_seq, state.unread) == (5, 0)
    state = await store.mark_read(b, conv, 1)
    assert (state.read_seq, state.unread) == (1, 2)  # a1 (2) and a2 (5)


async def test_read_marker_of_a_leaver_stops_at_their_leave(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b], first="one")).conv_id  # 1, 2
    await leave(store, conv, b)  # 3
    await post(store, conv, a, "later")  # 4
    state = await store.mark_read(b, conv, 10**9)
    assert (state.read_seq, state.unread) == (3, 0)
    with pytest.raises(ConversationNotFound):
        await store.mark_read(c, conv, 1)
    with pytest.raises(ConversationNotFound):
        await store.mark_read(a, conv + 100, 1)


# ----------------------------------------------------------------------------- inbox


async def test_inbox_of_a_leaver_is_frozen_at_their_leave(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b, c], name="Staff", first="one")).conv_id  # 1, 2
    await post(store, conv, a, "two")  # 3
    await leave(store, conv, b)  # 4
    await rename(store, conv, a, "Staff without Bob")  # 5
    await post(store, conv, a, "secret after bob")  # 6
    await leave(store, conv, c)  # 7

    (row_b,) = await store.inbox(b)
    assert row_b.conv_id == conv and not row_b.is_member
    assert row_b.name == "Staff"  # not the later name
    assert row_b.members == tuple(sorted((a, c)))  # right after the leave, without b
    assert row_b.last_seq == 4
    assert row_b.last_event is not None and row_b.last_event.kind == EventKind.LEFT
    assert row_b.unread == 2  # "one" and "two"; nothing after the leave
    assert (row_b.read_seq, (await store.mark_read(b, conv, 99)).unread) == (0, 0)

    (row_a,) = await store.inbox(a)
    assert row_a.is_member and row_a.name == "Staff without Bob"
    assert row_a.members == (a,)
    assert row_a.last_seq == 7 and row_a.unread == 0

    (row_c,) = await store.inbox(c)
    assert row_c.name == "Staff without Bob" and row_c.last_seq == 7
    assert row_c.unread == 3  # one, two, secret after bob — c was there for all of them
    assert row_c.members == (a,)


async def test_inbox_after_rejoin_shows_the_present_and_orders_by_activity(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    first = (await create_conv(store, a, [b], name="First", first="x")).conv_id
    second = (await create_conv(store, a, [b], name="Second", first="y")).conv_id
    await leave(store, first, b)
    await rename(store, first, a, "First again")
    await add_member(store, first, a, b)
    rows = await store.inbox(b)
    assert [r.conv_id for r in rows] == [first, second]  # most recent activity first
    assert rows[0].is_member and rows[0].name == "First again"
    assert rows[0].members == tuple(sorted((a, b)))
    assert rows[0].last_event is not None and rows[0].last_event.kind == EventKind.JOINED
    assert await store.inbox(10_000) == []


async def test_unread_is_capped_at_the_window(store_factory: StoreFactory) -> None:
    store = await store_factory.open(visible_window=3)
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    for i in range(6):
        await post(store, conv, a, f"m{i}")
    (row,) = await store.inbox(b)
    assert row.unread == 3
    assert (await store.mark_read(b, conv, 0)).unread == 3


async def test_inbox_of_a_shredded_conversation_has_no_content(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b], name="Old", first="x")).conv_id
    await store.shred_conversation(conv)
    (row,) = await store.inbox(b)
    assert (row.name, row.last_event, row.last_seq) == (None, None, 2)


# ----------------------------------------------------------------------------- cancellation


async def test_reads_cancelled_at_any_point_leave_the_store_usable(store: Store) -> None:
    """The gateway cancels a connection's tasks when its client vanishes, whatever store call
    they are in.  A cancelled read must not leave a pooled connection inside a transaction."""
    (a,) = await make_users(store, "alice")
    await store.create_session_token(SessionToken(digest("t"), a, 0, 8 * HOUR))
    for delay in range(6):  # cancel after 0, 1, 2 … loop iterations: BEGIN, query, COMMIT
        for _ in range(4):
            task = asyncio.create_task(store.find_session_token(digest("t")))
            for _ in range(delay):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for _ in range(4):  # every pooled connection still works
            assert await store.find_session_token(digest("t")) is not None
            assert (await store.get_user(a)).id == a
