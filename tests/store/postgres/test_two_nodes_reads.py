"""Two nodes on one PostgreSQL database writing what the reads keep: read markers and live
sessions, at the same instant.

A read marker never moves backwards, whatever the order two nodes' marks commit in, and a
user's live sessions never exceed the cap when two nodes open them together (the contract
suite's race runs on one node's pool; here two pools race).
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
from tests.conftest import create_conv, make_users, post


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
