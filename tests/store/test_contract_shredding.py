"""Contract: crypto-shredding at the end of retention (every backend)."""

from __future__ import annotations

import asyncio

import pytest

from chatd.core.conversations import AddMember, Leave, MessageBody, PostMessage, Rename
from chatd.core.errors import ConversationNotFound, ConversationShreddedError, UnavailableError
from chatd.store.contract import Store
from tests.conftest import create_conv, make_users, msg_id, post
from tests.store.conftest import StoreFactory


async def shredded_setup(store: Store) -> tuple[list[int], int, int]:
    a, b, c, d = await make_users(store, "alice", "bob", "carol", "dave")
    doomed = (await create_conv(store, a, [b, c], name="Old case", first="old")).conv_id
    await post(store, doomed, b, "reply")
    kept = (await create_conv(store, a, [b], name="Current", first="new")).conv_id
    await store.shred_conversation(doomed)
    return [a, b, c, d], doomed, kept


async def test_reads_of_a_shredded_conversation_raise(store: Store) -> None:
    (a, b, _, _), doomed, kept = await shredded_setup(store)
    for user in (a, b):
        with pytest.raises(ConversationShreddedError):
            await store.visible_window(user, doomed)
        with pytest.raises(ConversationShreddedError):
            await store.events_after(user, doomed, 0, 100)
        with pytest.raises(ConversationShreddedError):
            await store.events_before(user, doomed, 100, 100)
    # The other conversation is untouched.
    assert [e.payload.get("text") for e in (await store.visible_window(b, kept)).events] == [
        None,
        "new",
    ]


async def test_operations_on_a_shredded_conversation_raise(store: Store) -> None:
    (a, b, c, d), doomed, _ = await shredded_setup(store)
    ops = [
        PostMessage(doomed, a, MessageBody("still there?"), msg_id()),
        Rename(doomed, b, "new name", msg_id()),
        AddMember(doomed, a, d, msg_id()),
        Leave(doomed, c, msg_id()),
    ]
    for op in ops:
        with pytest.raises(ConversationShreddedError):
            await store.apply(op)
    # Someone who never was in it still cannot learn that it exists.
    with pytest.raises(ConversationNotFound):
        await store.apply(PostMessage(doomed, d, MessageBody("probe"), msg_id()))
    with pytest.raises(ConversationNotFound):
        await store.visible_window(d, doomed)


async def test_heads_show_no_last_event_and_verify_passes(store: Store) -> None:
    (_, b, _, _), doomed, kept = await shredded_setup(store)
    heads = {h.conv_id: h for h in await store.conversation_heads(b)}
    assert set(heads) == {doomed, kept}
    assert heads[doomed].last_event is None
    assert heads[doomed].last_visible_seq == 3
    assert heads[kept].last_event is not None
    report = await store.verify()
    assert report.ok, report.problems
    assert report.conversations == 2
    assert report.events == 3 + 2  # the shredded chain is still walked


async def test_shredding_is_durable_and_idempotent(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    (a, _, _, _), doomed, kept = await shredded_setup(store)
    await store.shred_conversation(doomed)  # again: no error, nothing changes
    with pytest.raises(ConversationNotFound):
        await store.shred_conversation(987654)
    await store.close()
    store = await store_factory.open()
    with pytest.raises(ConversationShreddedError):
        await store.visible_window(a, doomed)
    with pytest.raises(ConversationShreddedError):
        await post(store, doomed, a, "after reopen")
    assert (await post(store, kept, a, "fine")).first_seq == 3
    assert (await store.verify()).ok


async def test_expired_conversations_follow_the_last_event(store_factory: StoreFactory) -> None:
    now = {"ms": 1_000_000}
    store = await store_factory.open(clock_ms=lambda: now["ms"])
    a, b = await make_users(store, "alice", "bob")
    old = (await create_conv(store, a, [b], first="old")).conv_id
    revived = (await create_conv(store, a, [b], first="old too")).conv_id
    now["ms"] = 5_000_000
    await post(store, revived, b, "recent")  # its last event is recent now
    fresh = (await create_conv(store, a, [b])).conv_id
    assert await store.expired_conversations(2_000_000) == [old]
    assert await store.expired_conversations(6_000_000) == [old, revived, fresh]
    await store.shred_conversation(old)
    assert await store.expired_conversations(6_000_000) == [revived, fresh]
    assert await store.expired_conversations(1_000_000) == []


async def test_a_shred_by_another_process_is_seen_at_once(store_factory: StoreFactory) -> None:
    """``chatd retention run`` shreds while the server runs: the server's cached data key
    must not keep serving the conversation.  Found by this suite: reads trusted the cache."""
    server = await store_factory.open()
    a, b = await make_users(server, "alice", "bob")
    conv = (await create_conv(server, a, [b], first="secret")).conv_id
    assert (await server.visible_window(b, conv)).events[-1].payload["text"] == "secret"

    retention = await store_factory.open()  # the admin command, on the same database
    await retention.shred_conversation(conv)
    await retention.close()

    with pytest.raises(ConversationShreddedError):
        await server.visible_window(b, conv)
    with pytest.raises(ConversationShreddedError):
        await server.events_after(b, conv, 0, 100)
    with pytest.raises(ConversationShreddedError):
        await server.events_before(b, conv, 100, 100)
    (head,) = await server.conversation_heads(b)
    assert head.last_event is None


async def test_a_failed_batch_does_not_fail_the_next_one(store_factory: StoreFactory) -> None:
    """The server's writer learns of a foreign shred from the database: its first append
    there may fail as ``unavailable`` (retryable, by design).  The next operations, planned
    on the reloaded state, must then succeed or get their final error."""
    server = await store_factory.open()
    a, b = await make_users(server, "alice", "bob")
    doomed = (await create_conv(server, a, [b], first="secret")).conv_id
    healthy = (await create_conv(server, a, [b], first="fine")).conv_id
    retention = await store_factory.open()
    await retention.shred_conversation(doomed)
    await retention.close()

    with pytest.raises((UnavailableError, ConversationShreddedError)):
        await post(server, doomed, a, "after the shred")
    assert (await post(server, healthy, b, "unrelated")).first_seq == 3
    with pytest.raises(ConversationShreddedError):
        await post(server, doomed, a, "after the shred")


async def test_reads_racing_a_shred_do_not_revive_its_key(store: Store) -> None:
    """A read whose snapshot predates the shred may still serve the conversation, but no
    read may serve it once the shred has returned.  Found by this suite: an in-flight read
    re-cached the data key after the shred had forgotten it."""
    a, b = await make_users(store, "alice", "bob")
    for _ in range(10):
        conv = (await create_conv(store, a, [b], first="secret")).conv_id
        await asyncio.gather(
            *(store.visible_window(b, conv) for _ in range(3)),
            store.shred_conversation(conv),
            *(store.events_after(b, conv, 0, 10) for _ in range(3)),
            return_exceptions=True,
        )
        with pytest.raises(ConversationShreddedError):
            await store.visible_window(b, conv)
        (head, *_) = await store.conversation_heads(b)
        assert head.conv_id == conv and head.last_event is None
