"""Contract: the heads that moved (:mod:`chatd.store.head_feed`).  A watch starts from the
heads as they are when it is made; each look names every conversation whose head moved
since the previous one, with its last seq now; it may name one again, never with a stale
seq, and never leaves one out."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from tests.conftest import create_conv, make_users, post
from tests.store.conftest import BACKENDS, SERVER_BACKENDS, StoreFactory, make_store


def named_rightly(moved: dict[int, int], heads: dict[int, int]) -> None:
    """Every head a look names is the conversation's head now (no stale seq)."""
    assert all(heads[conv] == seq for conv, seq in moved.items()), (moved, heads)


async def test_a_new_watch_starts_from_now_and_names_every_move_after_it(store: Store) -> None:
    alice, bob = await make_users(store, "alice", "bob")
    quiet = (await create_conv(store, alice, [bob], first="avant")).conv_id
    busy = (await create_conv(store, alice, [bob])).conv_id
    watch = await store.head_watch()
    assert await watch.moved() == {}  # nothing moved since it was made
    created = await create_conv(store, bob, [alice], first="bonjour")
    await post(store, busy, bob, "un")
    await post(store, busy, alice, "deux")
    heads = {quiet: 2, busy: 3, created.conv_id: created.last_seq}
    moved = await watch.moved()
    assert moved.keys() >= {busy, created.conv_id} and quiet not in moved
    named_rightly(moved, heads)
    await post(store, quiet, bob, "enfin")
    heads[quiet] = 3
    again = await watch.moved()
    assert quiet in again  # a look after a look still sees what moved in between
    named_rightly(again, heads)


async def test_two_watches_each_see_every_move(store_factory: StoreFactory) -> None:
    """Two gateways' watches (two stores on one database for a server backend: two nodes)
    each see the appends of both."""
    first = await store_factory.open()
    second = await store_factory.open() if store_factory.backend in SERVER_BACKENDS else first
    alice, bob = await make_users(first, "alice", "bob")
    watches = [await first.head_watch(), await second.head_watch()]
    conv_a = (await create_conv(first, alice, [bob])).conv_id
    conv_b = (await create_conv(second, bob, [alice])).conv_id
    await asyncio.gather(
        *(post(first, conv_b, alice, f"de A {i}") for i in range(5)),
        *(post(second, conv_a, bob, f"de B {i}") for i in range(5)),
    )
    for watch in watches:
        moved = await watch.moved()
        assert moved.keys() >= {conv_a, conv_b}
        named_rightly(moved, {conv_a: 6, conv_b: 6})


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.integers(0, 3)),
        st.tuples(st.just("create"), st.just(0)),
        st.tuples(st.just("look"), st.just(0)),
    ),
    max_size=16,
)


async def watch_scenario(store: Store, steps: list[tuple[str, int]]) -> None:
    alice, bob = await make_users(store, f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}")
    convs = [(await create_conv(store, alice, [bob])).conv_id for _ in range(2)]
    heads = dict.fromkeys(convs, 1)
    watch = await store.head_watch()
    unseen: set[int] = set()  # moved since the last look
    for step, which in [*steps, ("look", 0)]:
        if step == "post":
            conv = convs[which % len(convs)]
            heads[conv] = (await post(store, conv, bob, "message")).last_seq
            unseen.add(conv)
        elif step == "create":
            created = await create_conv(store, bob, [alice], first="bonjour")
            convs.append(created.conv_id)
            heads[created.conv_id] = created.last_seq
            unseen.add(created.conv_id)
        else:
            moved = await watch.moved()
            assert moved.keys() >= unseen, "a move was left out"
            named_rightly(moved, heads)
            unseen.clear()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
def test_any_sequence_of_appends_and_looks_leaves_no_move_out(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    ring: KeyRing,
    backend: str,
    steps: list[tuple[str, int]],
) -> None:
    # One database for the test (examples add conversations of their own): a watch only
    # speaks of what moved after it was made.
    dsn = request.getfixturevalue("postgres_dsn") if backend in SERVER_BACKENDS else None

    async def run() -> None:
        store = make_store(backend, tmp_path, ring, durable=False, dsn=dsn)
        async with store:
            await watch_scenario(store, steps)

    asyncio.run(run())
