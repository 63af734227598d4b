"""Contract: dense seqs under concurrency, and durability across close/reopen."""

from __future__ import annotations

import asyncio
import contextlib
import random

from chatd.core.errors import ClientError, StoreClosedError
from chatd.core.records import AppendResult
from chatd.store.contract import Store
from tests.conftest import add_member, create_conv, leave, make_user, make_users, post, rename
from tests.store.conftest import StoreFactory, check_rules


async def test_concurrent_appends_get_dense_unique_seqs(store: Store) -> None:
    users = await make_users(store, "alice", "bob", "carol", "dave")
    convs = [(await create_conv(store, users[0], users[1:])).conv_id for _ in range(3)]

    async def writer(task: int) -> list[AppendResult]:
        out = []
        for n in range(15):
            conv = convs[(task + n) % len(convs)]
            out.append(await post(store, conv, users[task % 4], f"t{task} n{n}"))
        return out

    results = [r for rs in await asyncio.gather(*(writer(t) for t in range(16))) for r in rs]
    assert len(results) == 16 * 15
    for conv in convs:
        got = sorted(r.first_seq for r in results if r.conv_id == conv)
        assert got == list(range(2, 2 + len(got)))  # seq 1 is the creation
        page = await store.events_after(users[0], conv, 0, 1000)
        assert [e.seq for e in page.events] == list(range(1, 2 + len(got)))
    # Each returned event is stored as returned.
    stored = {
        (e.conv_id, e.seq): e
        for conv in convs
        for e in (await store.events_after(users[1], conv, 0, 1000)).events
    }
    for r in results:
        assert stored[(r.conv_id, r.first_seq)] == r.events[0]
    assert (await store.verify()).ok


async def test_concurrent_joins_leaves_and_messages_keep_the_rules(store: Store) -> None:
    """Everything a task is told succeeded is in the log in an order the rules allow."""
    users = await make_users(store, *(f"user{i}" for i in range(6)))
    owner, others = users[0], users[1:]
    conv = (await create_conv(store, owner, others[:2])).conv_id
    rng = random.Random(1234)

    async def actor(user: int) -> None:
        for n in range(25):
            choice = rng.random()
            try:
                if choice < 0.6:
                    await post(store, conv, user, f"{user}:{n}")
                elif choice < 0.8:
                    await add_member(store, conv, user, rng.choice(users))
                else:
                    await leave(store, conv, user)
            except ClientError:
                pass

    async def keeper() -> None:  # the owner keeps re-adding people, so activity continues
        for _ in range(40):
            with contextlib.suppress(ClientError):
                await add_member(store, conv, owner, rng.choice(others))
            await asyncio.sleep(0)  # a turn for the actors between two additions

    await asyncio.gather(keeper(), *(actor(u) for u in others))
    events = (await store.events_after(owner, conv, 0, 1000)).events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    members = check_rules(events)
    assert await store.current_members(conv) == members
    assert (await store.verify()).ok


async def test_everything_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    a = await make_user(store, "alice", first_name="Anne", email="anne@example.org")
    b = await make_user(store, "bob")
    await store.set_terms_accepted(a.id, "2026-01")
    conv = (await create_conv(store, a.id, [b.id], name="Durable", first="one")).conv_id
    await asyncio.gather(*(post(store, conv, b.id, f"m{i}") for i in range(20)))
    await leave(store, conv, b.id)
    window_before = await store.visible_window(a.id, conv)
    heads_before = await store.conversation_heads(b.id)
    users_before = await store.list_users()
    await store.close()
    await store.close()  # idempotent
    try:
        await post(store, conv, a.id, "after close")
        raise AssertionError("a closed store accepted a write")
    except StoreClosedError:
        pass

    store = await store_factory.open()
    assert await store.list_users() == users_before
    assert (await store.get_user(a.id)).terms_version == "2026-01"
    assert await store.visible_window(a.id, conv) == window_before
    assert await store.conversation_heads(b.id) == heads_before
    assert await store.current_members(conv) == {a.id}
    nxt = await post(store, conv, a.id, "after reopen")
    assert nxt.first_seq == window_before.events[-1].seq + 1
    assert (await rename(store, conv, a.id, "Still durable")).first_seq == nxt.first_seq + 1
    other = await create_conv(store, a.id, [b.id])
    assert other.conv_id != conv and other.first_seq == 1
    report = await store.verify()
    assert report.ok and report.conversations == 2


async def test_close_finishes_pending_writes(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    tasks = [asyncio.create_task(post(store, conv, a, f"pending {i}")) for i in range(50)]
    await asyncio.sleep(0)  # one loop turn: the tasks start and queue their writes
    await store.close()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    done = [r for r in outcomes if isinstance(r, AppendResult)]
    failed = [r for r in outcomes if not isinstance(r, AppendResult)]
    assert all(isinstance(e, StoreClosedError) for e in failed), failed
    assert done, "close() dropped every queued write"
    store = await store_factory.open()
    events = (await store.events_after(a, conv, 0, 1000)).events
    # Every acknowledged write is there, and nothing else.
    assert sorted(r.first_seq for r in done) == [e.seq for e in events[1:]]
    assert {r.events[0].payload["text"] for r in done} == {e.payload["text"] for e in events[1:]}
