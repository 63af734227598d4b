"""Contract: a retry with the same client_msg_id appends nothing (every backend)."""

from __future__ import annotations

import asyncio

from chatd.store.contract import Store
from tests.conftest import add_member, create_conv, leave, make_users, post, rename
from tests.store.conftest import StoreFactory


async def seqs(store: Store, user: int, conv: int) -> list[int]:
    return [e.seq for e in (await store.events_after(user, conv, 0, 1000)).events]


async def test_retried_message_is_a_duplicate(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    first = await post(store, conv, a, "hello", client_msg_id="c-1")
    again = await post(store, conv, a, "hello", client_msg_id="c-1")
    assert first.duplicate is False and len(first.events) == 1
    assert again.duplicate is True
    assert again.events == ()
    assert (again.conv_id, again.first_seq, again.last_seq) == (conv, 2, 2)
    # Even with a different body the retry returns the original and appends nothing.
    changed = await post(store, conv, a, "changed", client_msg_id="c-1")
    assert (changed.duplicate, changed.first_seq) == (True, 2)
    window = await store.visible_window(b, conv)
    assert [e.payload.get("text") for e in window.events] == [None, "hello"]
    assert await seqs(store, a, conv) == [1, 2]


async def test_every_operation_kind_is_idempotent(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b])).conv_id
    ops = [
        lambda: rename(store, conv, a, "Renamed", client_msg_id="r"),
        lambda: add_member(store, conv, a, c, client_msg_id="j"),
        lambda: leave(store, conv, b, client_msg_id="l"),
    ]
    for op in ops:
        original = await op()
        retry = await op()  # would be a rule error (already member, not a member) if re-run
        assert retry.duplicate is True
        assert (retry.first_seq, retry.last_seq) == (original.first_seq, original.last_seq)
    assert await seqs(store, a, conv) == [1, 2, 3, 4]


async def test_ids_are_scoped_by_sender_and_conversation(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    one = (await create_conv(store, a, [b])).conv_id
    two = (await create_conv(store, a, [b])).conv_id
    results = [
        await post(store, one, a, "a in one", client_msg_id="same"),
        await post(store, one, b, "b in one", client_msg_id="same"),
        await post(store, two, a, "a in two", client_msg_id="same"),
    ]
    assert [r.duplicate for r in results] == [False, False, False]
    assert [(r.conv_id, r.first_seq) for r in results] == [(one, 2), (one, 3), (two, 2)]


async def test_retried_creation_returns_the_same_conversation(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    first = await create_conv(store, a, [b], first="hi", client_msg_id="new-1")
    again = await create_conv(store, a, [b], first="hi", client_msg_id="new-1")
    assert again.duplicate is True
    assert (again.conv_id, again.first_seq, again.last_seq) == (first.conv_id, 1, 2)
    assert [h.conv_id for h in await store.conversation_heads(a)] == [first.conv_id]
    # Another sender's creation with the same id is another conversation.
    other = await create_conv(store, b, [a], client_msg_id="new-1")
    assert other.duplicate is False and other.conv_id != first.conv_id
    # A creation id does not collide with a message id in the new conversation.
    msg = await post(store, first.conv_id, a, "x", client_msg_id="new-1")
    assert (msg.duplicate, msg.first_seq) == (False, 3)


async def test_concurrent_duplicates_in_one_batch(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    results = await asyncio.gather(
        *(post(store, conv, a, "once", client_msg_id="dup") for _ in range(20)),
        *(post(store, conv, b, f"other {i}") for i in range(5)),
    )
    dups = results[:20]
    assert sum(not r.duplicate for r in dups) == 1
    assert len({(r.first_seq, r.last_seq) for r in dups}) == 1
    texts = [e.payload.get("text") for e in (await store.visible_window(a, conv)).events]
    assert texts.count("once") == 1
    assert await seqs(store, a, conv) == list(range(1, 8))


async def test_concurrent_duplicate_creations(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    results = await asyncio.gather(
        *(create_conv(store, a, [b], first="go", client_msg_id="create-once") for _ in range(10))
    )
    assert sum(not r.duplicate for r in results) == 1
    assert len({(r.conv_id, r.first_seq, r.last_seq) for r in results}) == 1
    assert len(await store.conversation_heads(b)) == 1


async def test_idempotency_survives_reopen(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    a, b = await make_users(store, "alice", "bob")
    created = await create_conv(store, a, [b], client_msg_id="create-x")
    posted = await post(store, created.conv_id, b, "hello", client_msg_id="post-x")
    await store.close()

    store = await store_factory.open()
    again = await create_conv(store, a, [b], client_msg_id="create-x")
    assert (again.duplicate, again.conv_id) == (True, created.conv_id)
    repost = await post(store, created.conv_id, b, "hello", client_msg_id="post-x")
    assert (repost.duplicate, repost.first_seq) == (True, posted.first_seq)
    assert await seqs(store, a, created.conv_id) == [1, 2]
