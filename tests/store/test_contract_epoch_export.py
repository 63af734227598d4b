"""Contract: the store's epoch and the operator's export read path (every backend)."""

from __future__ import annotations

import itertools
import os
import re

import pytest

from chatd.core.errors import ValidationError
from chatd.core.events import Event, EventKind
from chatd.store.contract import Store
from tests.conftest import add_member, create_conv, leave, make_users, post
from tests.store.conftest import SERVER_BACKENDS, StoreFactory, make_store

EPOCH = re.compile(r"[0-9a-f]{32}")
_others = itertools.count(1)


async def test_the_epoch_lasts_across_reopening(store_factory: StoreFactory) -> None:
    first = await store_factory.open()
    epoch = first.epoch
    assert EPOCH.fullmatch(epoch)
    await first.close()
    again = await store_factory.open()
    assert again.epoch == epoch


async def test_a_declared_epoch_is_new_and_durable(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    old = store.epoch
    new = await store.declare_new_epoch()
    assert EPOCH.fullmatch(new) and new != old
    assert store.epoch == new
    await store.close()
    assert (await store_factory.open()).epoch == new


async def test_every_database_has_its_own_epoch(
    store: Store,
    tmp_path_factory: pytest.TempPathFactory,
    store_factory: StoreFactory,
    request: pytest.FixtureRequest,
) -> None:
    dsn = None
    if store_factory.backend in SERVER_BACKENDS:  # another database on the same server
        server = request.getfixturevalue("postgres_server")
        name = f"other_{os.getpid()}_{next(_others)}"
        dsn = server.create_database(name)
        request.addfinalizer(lambda: server.drop_database(name))
    directory = tmp_path_factory.mktemp("other")
    other = make_store(store_factory.backend, directory, store_factory.ring, dsn=dsn)
    async with other:
        assert other.epoch != store.epoch


async def export_all(store: Store, limit: int) -> list[Event]:
    events: list[Event] = []
    after = (0, 0)
    while page := await store.export_events(after, limit):
        assert len(page) <= limit
        events.extend(page)
        after = (page[-1].conv_id, page[-1].seq)
    return events


async def test_export_pages_through_every_event_in_order(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    first = (await create_conv(store, a, [b], first="un")).conv_id
    second = (await create_conv(store, b, [c], name="Autre")).conv_id
    await post(store, first, b, "deux")
    await add_member(store, first, a, c)
    await leave(store, first, b)
    await post(store, second, c, "trois")
    everything = await export_all(store, 1000)
    assert [(e.conv_id, e.seq) for e in everything] == sorted(
        [(first, s) for s in range(1, 6)] + [(second, s) for s in range(1, 3)]
    )
    # No visibility filter: the operator's read sees what no single member may see together.
    assert [e.kind for e in everything if e.conv_id == first] == [
        EventKind.CREATED,
        EventKind.MESSAGE,
        EventKind.MESSAGE,
        EventKind.JOINED,
        EventKind.LEFT,
    ]
    assert [e.payload.get("text") for e in everything if e.kind == EventKind.MESSAGE] == [
        "un",
        "deux",
        "trois",
    ]
    for limit in (1, 2, 3):
        assert await export_all(store, limit) == everything


async def test_export_leaves_shredded_conversations_out(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    doomed = (await create_conv(store, a, [b], first="old")).conv_id
    kept = (await create_conv(store, a, [b], first="new")).conv_id
    await store.shred_conversation(doomed)
    assert {e.conv_id for e in await export_all(store, 1)} == {kept}


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_export_refuses_a_bad_limit(store: Store, limit: int) -> None:
    with pytest.raises(ValidationError):
        await store.export_events((0, 0), limit)
