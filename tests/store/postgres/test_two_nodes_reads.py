"""Two nodes on one PostgreSQL database writing what the reads keep: read markers and live
sessions, at the same instant.

A read marker never moves backwards, whatever the order two nodes' marks commit in, and a
user's live sessions never exceed the cap when two nodes open them together (the contract
suite's race runs on one node's pool; here two pools race).  And every statement of the
reads, markers and live sessions runs as the application role, with exactly its privileges.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.core.records import LiveSession, SessionToken
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.conftest import add_member, create_conv, leave, make_users, post
from tests.store.postgres.test_accounts_nodes import app_dsn

__all__ = ["app_dsn"]  # the fixture: a database migrated by its owner, the application role


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@pytest.fixture
async def nodes(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> AsyncIterator[list[PostgresStore]]:
    stores = [
        PostgresStore(postgres_dsn, ring, checkpoint_log=tmp_path / f"n{i}.checkpoints")
        for i in range(2)
    ]
    for store in stores:
        await store.open()
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def test_two_nodes_marking_at_once_never_move_a_marker_back(
    nodes: list[PostgresStore],
) -> None:
    a, b = await make_users(nodes[0], "alice", "bob")
    conv = (await create_conv(nodes[0], a, [b])).conv_id
    for i in range(30):
        await post(nodes[i % 2], conv, a, f"message {i}")
    top = 31
    seqs = list(range(1, top + 1)) * 2
    random.Random(7).shuffle(seqs)
    states = await asyncio.gather(
        *(nodes[i % 2].mark_read(b, conv, seq) for i, seq in enumerate(seqs))
    )
    # Each mark returns a marker at least where it asked, never one moved back.
    assert all(state.read_seq >= seq for state, seq in zip(states, seqs, strict=True))
    for node in nodes:
        [row] = await node.inbox(b)
        assert (row.read_seq, row.unread) == (top, 0)
    assert (await nodes[1].mark_read(b, conv, 3)).read_seq == top


async def test_two_nodes_opening_sessions_at_once_keep_the_cap(
    nodes: list[PostgresStore],
) -> None:
    (a,) = await make_users(nodes[0], "alice")
    await nodes[0].create_session_token(SessionToken(digest("t"), a, 0, 10**9))
    for round_ in range(5):
        opened = await asyncio.gather(
            *(
                nodes[i % 2].open_live_session(
                    LiveSession(f"n{i % 2}.{round_}-{i}", f"n{i % 2}", a, digest("t"), 100),
                    cap=3,
                    stale_before=0,
                )
                for i in range(10)
            )
        )
        assert sum(opened) == 3
        assert await nodes[1].live_session_counts(a, 0) == {digest("t"): 3}
        await asyncio.gather(nodes[0].end_node_sessions("n0"), nodes[1].end_node_sessions("n1"))
        assert await nodes[0].live_session_counts(a, 0) == {}


async def test_the_application_role_may_do_everything_the_reads_do(
    app_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    store = PostgresStore(app_dsn, ring, checkpoint_log=tmp_path / "n.checkpoints", migrate=False)
    await store.open()
    try:
        a, b, c = await make_users(store, "alice", "bob", "carol")
        conv = (await create_conv(store, a, [b], first="hello")).conv_id
        await add_member(store, conv, a, c)
        await post(store, conv, c, "hi")
        await leave(store, conv, b)
        assert await store.current_members(conv) == {a, c}
        assert len(await store.intervals(b, conv)) == 1
        assert await store.fellow_members(a, [b, c]) == {b, c}
        assert (await store.visible_window(c, conv)).events
        assert (await store.events_after(b, conv, 0, 10)).events
        assert (await store.events_before(a, conv, 5, 10)).events
        assert [h.conv_id for h in await store.conversation_heads(b)] == [conv]
        assert (await store.audience(conv, 1, 2))[1] == {a, b}
        assert len(await store.chain_views(b, [(conv, 1), (conv, 9)])) == 2
        assert len(await store.export_events()) == 5
        assert (await store.mark_read(b, conv, 99)).read_seq == 5  # b's left event
        assert (await store.mark_read(b, conv, 1)).read_seq == 5
        assert [r.conv_id for r in await store.inbox(b)] == [conv]
        await store.create_session_token(SessionToken(digest("t"), a, 0, 10**9))
        session = LiveSession("n.1", "n", a, digest("t"), 100)
        assert await store.open_live_session(session, cap=1, stale_before=0)
        await store.refresh_live_sessions("n", 200)
        late = LiveSession("n.2", "n", a, digest("t"), 300)
        assert await store.open_live_session(late, cap=1, stale_before=250)  # n.1 was stale
        await store.close_live_sessions(["n.2"])
        assert await store.open_live_session(session, cap=1, stale_before=0)
        await store.end_node_sessions("n")
        assert await store.live_session_counts(a, 0) == {}
    finally:
        await store.close()
