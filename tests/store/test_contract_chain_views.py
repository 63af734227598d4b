"""Contract: events carry their chain link, and ``chain_views`` answers what a client that
remembers a hash may be told (``docs/protocol.md`` §9.2).

Every event a store returns — appended, paged, listed, exported — carries ``hash`` and
``prev_hash``, and they chain: event ``n``'s ``prev_hash`` is event ``n - 1``'s hash (GENESIS
for the first).  ``chain_views`` tells the hash at a seq only where the user may see that seq,
and the head only as far as they may see: a leaver's head is their ``left`` event.
"""

from __future__ import annotations

from chatd.core import visibility
from chatd.core.events import Event
from chatd.core.records import ChainView
from chatd.crypto.chain import GENESIS
from chatd.store.contract import Store
from tests.conftest import add_member, create_conv, leave, make_users, post


async def full_log(store: Store, conv: int) -> list[Event]:
    return [e for e in await store.export_events(limit=1000) if e.conv_id == conv]


def assert_chained(log: list[Event]) -> None:
    prev = GENESIS
    for event in log:
        assert len(event.hash) == 32, event
        assert event.prev_hash == prev, event.seq
        prev = event.hash


async def test_events_carry_their_chain_link_on_every_path(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    created = await create_conv(store, a, [b], first="one")
    conv = created.conv_id
    appended = list(created.events)
    for text in ("two", "three"):
        appended += (await post(store, conv, b, text)).events
    log = await full_log(store, conv)
    assert_chained(log)
    assert log == appended  # the hashes the writer returned are the ones stored
    assert list((await store.visible_window(a, conv)).events) == log
    assert list((await store.events_after(b, conv, 0, 100)).events) == log
    assert list((await store.events_before(b, conv, 100, 100)).events) == log
    (row,) = await store.inbox(a)
    assert row.last_event == log[-1]
    assert row.last_hash == log[-1].hash
    (head,) = await store.conversation_heads(a)
    assert head.last_event == log[-1]


async def test_chain_views_follow_visibility(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b], first="one")).conv_id  # 1, 2
    await post(store, conv, b, "two")  # 3
    await leave(store, conv, b)  # 4
    await post(store, conv, a, "after bob left")  # 5
    await add_member(store, conv, a, b)  # 6: bob is back
    await post(store, conv, a, "welcome back")  # 7
    await leave(store, conv, b)  # 8
    await post(store, conv, a, "after bob left again")  # 9
    log = await full_log(store, conv)
    assert_chained(log)
    intervals = visibility.intervals_from_log(log)
    positions = [(conv, seq) for seq in range(0, 11)]
    for user in (a, b, c):
        views = await store.chain_views(user, positions)
        expected = [
            visibility.chain_view(conv, log, intervals.get(user, ()), seq) for _, seq in positions
        ]
        assert views == expected, user

    by_seq = {e.seq: e.hash for e in log}
    bob = {v.seq: v for v in await store.chain_views(b, positions)}
    assert bob[3] == ChainView(conv, 3, by_seq[3], 8, by_seq[8])  # his head: his last leave
    assert bob[5].at is None  # while he was away: never his
    assert bob[7].at == by_seq[7]
    assert bob[9].at is None and bob[9].head_seq == 8  # after his leave: nothing, no later hash
    alice = {v.seq: v for v in await store.chain_views(a, positions)}
    assert (alice[9].at, alice[9].head_seq, alice[9].head) == (by_seq[9], 9, by_seq[9])
    assert alice[10].at is None  # the log is shorter than that
    # Carol never was in it: exactly like a conversation that does not exist.
    assert await store.chain_views(c, [(conv, 1)]) == [ChainView(conv, 1, None, 0, None)]
    assert await store.chain_views(a, [(conv + 1000, 1)]) == [
        ChainView(conv + 1000, 1, None, 0, None)
    ]


async def test_chain_views_answer_many_conversations_in_order(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    convs = [(await create_conv(store, a, [b], first=f"c{i}")).conv_id for i in range(320)]
    positions = [(conv, 2) for conv in reversed(convs)]  # more than one chunk, out of order
    views = await store.chain_views(b, positions)
    assert [(v.conv_id, v.seq) for v in views] == positions
    for view in views:
        assert view.at is not None and view.at == view.head and view.head_seq == 2
    assert await store.chain_views(b, []) == []
