"""Contract: membership intervals and the visible window, on every read path.

Semantics: a user reads the events whose seq lies in one of their intervals
``[joined_seq, left_seq)``, ``left_seq`` being the seq after their ``left`` event.  The window
holds their W most recent visible messages and every visible system event after the last
archived message; what lies before it is archived and reported as such.
"""

from __future__ import annotations

import itertools

import pytest

from chatd.core.errors import ValidationError
from chatd.core.events import EventKind
from chatd.core.records import EventPage, Interval
from chatd.store.contract import Store
from tests.conftest import add_member, create_conv, leave, make_users, post, rename
from tests.store.conftest import StoreFactory


def seqs(page: EventPage) -> list[int]:
    return [e.seq for e in page.events]


async def all_paths(store: Store, user: int, conv: int) -> dict[str, list[int]]:
    """What each read path returns for ``user``, as seqs."""
    window = await store.visible_window(user, conv)
    return {
        "window": seqs(window),
        "after": seqs(await store.events_after(user, conv, 0, 1000)),
        "before": seqs(await store.events_before(user, conv, 10**9, 1000)),
    }


async def test_leaver_sees_up_to_their_leave_and_nothing_after(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b], first="one")).conv_id  # 1, 2
    await post(store, conv, b, "two")  # 3
    assert (await leave(store, conv, b)).first_seq == 4
    await post(store, conv, a, "after bob left")  # 5
    await rename(store, conv, a, "Without Bob")  # 6
    await add_member(store, conv, a, c)  # 7
    await post(store, conv, c, "hello carol")  # 8

    assert await store.intervals(b, conv) == (Interval(1, 5),)
    assert await all_paths(store, b, conv) == {
        "window": [1, 2, 3, 4],
        "after": [1, 2, 3, 4],
        "before": [1, 2, 3, 4],
    }
    window = await store.visible_window(b, conv)
    assert window.events[-1].kind == EventKind.LEFT
    assert (window.archived, window.has_more) == (False, False)
    after = await store.events_after(b, conv, 4, 100)
    assert (after.events, after.archived, after.has_more) == ((), False, False)
    assert seqs(await store.events_after(b, conv, 3, 100)) == [4]
    page = await store.events_before(b, conv, 4, 2)
    assert (seqs(page), page.has_more, page.archived) == ([2, 3], True, False)

    (head,) = await store.conversation_heads(b)
    assert (head.conv_id, head.is_member, head.last_visible_seq) == (conv, False, 4)
    assert head.last_event is not None
    assert (head.last_event.seq, head.last_event.kind) == (4, EventKind.LEFT)

    (head_a,) = await store.conversation_heads(a)
    assert (head_a.is_member, head_a.last_visible_seq) == (True, 8)
    assert head_a.last_event is not None and head_a.last_event.payload["text"] == "hello carol"
    assert (await all_paths(store, c, conv))["window"] == [7, 8]


async def test_re_added_user_sees_from_the_new_join(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id  # 1
    await post(store, conv, b, "before leaving")  # 2
    await leave(store, conv, b)  # 3
    await post(store, conv, a, "private 1")  # 4
    await rename(store, conv, a, "private name")  # 5
    rejoined = await add_member(store, conv, a, b)  # 6
    assert rejoined.first_seq == 6 and rejoined.events[0].sender == a
    await post(store, conv, a, "welcome back")  # 7

    assert await store.intervals(b, conv) == (Interval(1, 4), Interval(6, None))
    expected = [1, 2, 3, 6, 7]
    assert await all_paths(store, b, conv) == {p: expected for p in ("window", "after", "before")}
    assert seqs(await store.events_after(b, conv, 3, 100)) == [6, 7]
    assert seqs(await store.events_before(b, conv, 6, 100)) == [1, 2, 3]
    (head,) = await store.conversation_heads(b)
    assert (head.is_member, head.last_visible_seq) == (True, 7)

    await leave(store, conv, b)  # 8
    await post(store, conv, a, "private 2")  # 9
    assert await store.intervals(b, conv) == (Interval(1, 4), Interval(6, 9))
    assert (await all_paths(store, b, conv))["window"] == [1, 2, 3, 6, 7, 8]
    (head,) = await store.conversation_heads(b)
    assert (head.is_member, head.last_visible_seq) == (False, 8)
    texts = [e.payload.get("text") for e in (await store.visible_window(b, conv)).events]
    assert "private 1" not in texts and "private 2" not in texts


async def build_long_conversation(store: Store) -> tuple[int, int, int, list[int], list[int]]:
    """a and b; 250 messages with a rename after every 50th; c added after the 100th.

    Returns (conv, b, c, message seqs, all seqs)."""
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b])).conv_id
    messages: list[int] = []
    every: list[int] = [1]
    for i in range(1, 251):
        result = await post(store, conv, a if i % 2 else b, f"message {i}")
        messages.append(result.first_seq)
        every.append(result.first_seq)
        if i % 50 == 0:
            every.append((await rename(store, conv, a, f"name {i}")).first_seq)
        if i == 100:
            every.append((await add_member(store, conv, b, c)).first_seq)
    assert every == list(range(1, len(every) + 1))
    return conv, b, c, messages, every


async def test_window_holds_the_latest_200_messages(store: Store) -> None:
    assert store.window_size == 200
    conv, b, c, messages, every = await build_long_conversation(store)
    window = await store.visible_window(b, conv)
    start = messages[-201] + 1
    assert window.window_start == start
    assert window.archived is True
    assert window.has_more is False
    assert seqs(window) == [s for s in every if s >= start]
    window_messages = [e for e in window.events if e.kind == EventKind.MESSAGE]
    assert [e.seq for e in window_messages] == messages[-200:]
    assert window_messages[0].payload["text"] == "message 51"
    assert window_messages[-1].payload["text"] == "message 250"

    # Carol joined after message 100: she sees 150 messages, nothing is archived for her.
    carol = await store.visible_window(c, conv)
    joined = (await store.intervals(c, conv))[0].joined_seq
    assert (carol.archived, carol.window_start) == (False, joined)
    assert seqs(carol) == [s for s in every if s >= joined]
    assert sum(e.kind == EventKind.MESSAGE for e in carol.events) == 150


async def test_events_after_reaching_past_the_window(store: Store) -> None:
    conv, b, _, _, every = await build_long_conversation(store)
    window = await store.visible_window(b, conv)
    start = window.window_start

    resumed = await store.events_after(b, conv, 0, 1000)
    assert resumed.archived is True
    assert resumed.events == window.events
    assert resumed.window_start == start
    assert (await store.events_after(b, conv, 10, 1000)).archived is True

    in_window = await store.events_after(b, conv, start - 1, 1000)
    assert in_window.archived is False
    assert in_window.events == window.events

    # Paging forward from the window start reaches the end without gap or repeat.
    collected: list[int] = []
    after = start - 1
    while True:
        page = await store.events_after(b, conv, after, 50)
        assert page.archived is False
        collected += seqs(page)
        if not page.has_more:
            break
        assert len(page.events) == 50
        after = page.events[-1].seq
    assert collected == seqs(window)

    end = await store.events_after(b, conv, every[-1], 10)
    assert (end.events, end.archived, end.has_more) == ((), False, False)


async def test_events_before_pages_down_to_the_window_start(store: Store) -> None:
    conv, b, _, _, every = await build_long_conversation(store)
    window = await store.visible_window(b, conv)
    collected: list[int] = []
    before = every[-1] + 1
    pages = 0
    while True:
        page = await store.events_before(b, conv, before, 64)
        pages += 1
        collected = seqs(page) + collected
        if not page.has_more:
            assert page.archived is True  # reached the window start, older ones exist
            break
        assert page.archived is False
        assert len(page.events) == 64
        before = page.events[0].seq
    assert pages == 4
    assert collected == seqs(window)
    assert collected[0] == window.window_start
    below = await store.events_before(b, conv, window.window_start, 10)
    assert (below.events, below.archived, below.has_more) == ((), True, False)


async def test_system_events_after_the_last_archived_message_are_in_the_window(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory.open(visible_window=3)
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b], first="m2")).conv_id  # 1, 2
    await post(store, conv, b, "m3")  # 3
    await rename(store, conv, a, "renamed")  # 4
    for text in ("m5", "m6", "m7"):
        await post(store, conv, a, text)
    window = await store.visible_window(b, conv)
    assert (seqs(window), window.window_start, window.archived) == ([4, 5, 6, 7], 4, True)
    assert window.events[0].kind == EventKind.RENAMED


async def test_exactly_w_messages_are_not_archived(store_factory: StoreFactory) -> None:
    store = await store_factory.open(visible_window=3)
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b], first="m2")).conv_id
    await post(store, conv, a, "m3")
    await post(store, conv, a, "m4")
    window = await store.visible_window(b, conv)
    assert (seqs(window), window.window_start, window.archived) == ([1, 2, 3, 4], 1, False)
    after = await store.events_after(b, conv, 0, 100)
    assert (seqs(after), after.archived) == ([1, 2, 3, 4], False)
    await post(store, conv, a, "m5")
    window = await store.visible_window(b, conv)
    assert (seqs(window), window.window_start, window.archived) == ([3, 4, 5], 3, True)


async def test_window_of_a_leaver_and_of_a_re_added_user(store_factory: StoreFactory) -> None:
    store = await store_factory.open(visible_window=3)
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b], first="m2")).conv_id  # 1, 2
    await post(store, conv, b, "m3")  # 3
    await post(store, conv, a, "m4")  # 4
    await leave(store, conv, b)  # 5
    for text in ("m6", "m7", "m8"):  # 6, 7, 8: never visible to bob
        await post(store, conv, a, text)
    window = await store.visible_window(b, conv)
    assert (seqs(window), window.archived) == ([1, 2, 3, 4, 5], False)
    await post(store, conv, a, "m9")  # 9
    await add_member(store, conv, a, b)  # 10
    await post(store, conv, a, "m11")  # 11
    # Bob's visible messages: 2, 3, 4, 11; W = 3, so the window starts after 2.
    window = await store.visible_window(b, conv)
    assert (seqs(window), window.window_start, window.archived) == ([3, 4, 5, 10, 11], 3, True)
    after = await store.events_after(b, conv, 0, 100)
    assert (seqs(after), after.archived) == ([3, 4, 5, 10, 11], True)
    after = await store.events_after(b, conv, 4, 100)
    assert (seqs(after), after.archived) == ([5, 10, 11], False)
    assert seqs(await store.events_after(b, conv, 5, 100)) == [10, 11]
    before = await store.events_before(b, conv, 10, 100)
    assert (seqs(before), before.archived, before.has_more) == ([3, 4, 5], True, False)
    texts = {e.payload.get("text") for e in window.events}
    assert texts.isdisjoint({"m6", "m7", "m8", "m9"})


async def test_conversation_heads_newest_first(store_factory: StoreFactory) -> None:
    ticks = itertools.count(1_700_000_000_000, 1000)
    store = await store_factory.open(clock_ms=lambda: next(ticks))
    a, b, c = await make_users(store, "alice", "bob", "carol")
    one = (await create_conv(store, a, [b], first="first")).conv_id
    two = (await create_conv(store, a, [b, c], first="second")).conv_id
    three = (await create_conv(store, c, [a], first="third")).conv_id
    await post(store, one, b, "latest")
    heads = await store.conversation_heads(a)
    assert [h.conv_id for h in heads] == [one, three, two]
    assert all(h.is_member for h in heads)
    assert [h.last_visible_seq for h in heads] == [3, 2, 2]
    assert [h.last_event.payload["text"] for h in heads if h.last_event] == [
        "latest",
        "third",
        "second",
    ]
    assert [h.conv_id for h in await store.conversation_heads(b)] == [one, two]
    assert [h.conv_id for h in await store.conversation_heads(c)] == [three, two]


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_page_limits_are_checked(store: Store, limit: int) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    with pytest.raises(ValidationError):
        await store.events_after(a, conv, 0, limit)
    with pytest.raises(ValidationError):
        await store.events_before(a, conv, 100, limit)
