"""Contract: master key (KEK) rotation re-wraps data keys only (every backend)."""

from __future__ import annotations

import pytest

from chatd.core.errors import UnknownKeyError
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from tests.conftest import create_conv, make_user, make_users, post
from tests.store.conftest import StoreFactory


async def populate(store: Store) -> tuple[int, int, list[int]]:
    a = (await make_user(store, "alice", first_name="Anne", email="anne@example.org")).id
    b = (await make_user(store, "bob")).id
    convs = []
    for i in range(3):
        conv = (await create_conv(store, a, [b], name=f"Conv {i}", first=f"first {i}")).conv_id
        await post(store, conv, b, f"reply {i}")
        convs.append(conv)
    return a, b, convs


async def test_rotation_then_retiring_the_old_key(
    store_factory: StoreFactory, ring: KeyRing
) -> None:
    store = await store_factory.open()
    a, b, convs = await populate(store)
    await store.shred_conversation(convs[2])
    assert await store.kek_ids_in_use() == {ring.active_id}
    windows = {c: await store.visible_window(b, c) for c in convs[:2]}
    users = await store.list_users()

    rotated = ring.with_new_active()
    assert rotated.active_id != ring.active_id
    count = await store.rewrap_data_keys(rotated)
    assert count == 1 + 2  # the user directory and the two live conversations
    assert await store.kek_ids_in_use() == {rotated.active_id}
    # The store uses the new ring at once: new data keys are wrapped by the new KEK.
    new_conv = (await create_conv(store, a, [b], first="after rotation")).conv_id
    assert await store.kek_ids_in_use() == {rotated.active_id}
    await store.close()

    store = await store_factory.open(ring=rotated.without(ring.active_id))
    assert await store.list_users() == users
    for conv, window in windows.items():
        assert await store.visible_window(b, conv) == window
    assert (await store.visible_window(a, new_conv)).events[-1].payload["text"] == "after rotation"
    assert (await post(store, convs[0], a, "still works")).first_seq == 4
    report = await store.verify()
    assert report.ok, report.problems
    assert report.conversations == 4


async def test_without_rotation_the_old_key_is_still_needed(
    store_factory: StoreFactory, ring: KeyRing
) -> None:
    store = await store_factory.open()
    await populate(store)
    await store.close()
    stranger = KeyRing.generate()  # the right file missing: nothing opens
    with pytest.raises(UnknownKeyError):
        await store_factory.open(ring=stranger)


async def test_rotation_twice(store_factory: StoreFactory, ring: KeyRing) -> None:
    store = await store_factory.open()
    a, _, convs = await populate(store)
    second = ring.with_new_active()
    await store.rewrap_data_keys(second)
    third = second.with_new_active()
    assert await store.rewrap_data_keys(third) == 1 + 3
    assert await store.kek_ids_in_use() == {third.active_id}
    await store.close()
    only = third.without(ring.active_id).without(second.active_id)
    assert set(only.keys) == {third.active_id}
    store = await store_factory.open(ring=only)
    texts = [e.payload.get("text") for e in (await store.visible_window(a, convs[1])).events]
    assert texts == [None, "first 1", "reply 1"]
    assert (await store.verify()).ok


async def test_kek_ids_of_an_empty_store(store: Store, ring: KeyRing) -> None:
    # The user directory has its data key from the start.
    assert await store.kek_ids_in_use() == {ring.active_id}
    await make_users(store, "alice")
    assert await store.kek_ids_in_use() == {ring.active_id}
