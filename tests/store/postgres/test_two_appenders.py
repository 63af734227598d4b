"""Two nodes appending to one PostgreSQL database at the same instant.

Each example opens two stores (two nodes: two pools, two writers, two planner caches) on
one database and runs rounds of operations, each round's operations at once on both nodes:
posts to shared conversations, retries of one key sent to both nodes together, creations
retried on both.  Whatever the interleaving, every conversation's seqs are exactly 1…n
with each event linked to the one before it, every key has one result, and each operation
is stored once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from pathlib import Path

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.core.conversations import CreateConversation, MessageBody, PostMessage
from chatd.core.records import AppendResult
from chatd.crypto.chain import GENESIS
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.conftest import make_users

CONVERSATIONS = 3
_examples = itertools.count()

# One operation: (node, conversation index, what); "retry" sends the key of the previous
# post of that node again, to both nodes at once; "create" a creation on both nodes at once.
step = st.tuples(
    st.integers(0, 1),
    st.integers(0, CONVERSATIONS - 1),
    st.sampled_from(["post", "retry", "create"]),
)
rounds = st.lists(st.lists(step, min_size=1, max_size=8), min_size=1, max_size=6)


async def _scenario(
    dsn: str, directory: Path, ring: KeyRing, plan: list[list[tuple[int, int, str]]]
) -> None:
    example = next(_examples)
    nodes = [
        PostgresStore(dsn, ring, checkpoint_log=directory / f"n{example}-{i}.checkpoints")
        for i in range(2)
    ]
    for node in nodes:
        await node.open()
    try:
        alice, bob = await make_users(nodes[0], f"alice{example}", f"bob{example}")
        results: dict[tuple[int, str], set[tuple[int, int, int]]] = defaultdict(set)
        convs = []
        for i in range(CONVERSATIONS):
            create = CreateConversation(alice, (bob,), f"c{i}", f"e{example}-c{i}")
            created = await nodes[i % 2].apply(create)
            results[(0, create.client_msg_id)].add((created.conv_id, 1, 1))
            convs.append(created.conv_id)
        last_key: dict[int, PostMessage] = {}
        counter = itertools.count()

        async def run(node: int, op: PostMessage | CreateConversation) -> None:
            result: AppendResult = await nodes[node].apply(op)
            results[(op.conv_id, op.client_msg_id)].add(
                (result.conv_id, result.first_seq, result.last_seq)
            )

        for round_ in plan:
            work = []
            for node, index, what in round_:
                sender = (alice, bob)[node]
                if what == "post":
                    n = next(counter)
                    op = PostMessage(convs[index], sender, MessageBody(f"m{n}"), f"e{example}-p{n}")
                    last_key[node] = op
                    work.append(run(node, op))
                elif what == "retry" and node in last_key:
                    again = last_key[node]
                    work += [run(0, again), run(1, again)]
                elif what == "create":
                    key = f"e{example}-x{next(counter)}"
                    create = CreateConversation(alice, (bob,), "again", key)
                    work += [run(0, create), run(1, create)]
            await asyncio.gather(*work)
    finally:
        for node in nodes:
            await node.close()

    # Every key has one result, whichever node answered and however often it was sent.
    assert all(len(outcomes) == 1 for outcomes in results.values()), results
    mine = sorted({outcome[0] for outcomes in results.values() for outcome in outcomes})
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT conv_id, seq, prev_hash, hash FROM events WHERE conv_id = ANY($1::BIGINT[])"
            " ORDER BY conv_id, seq",
            mine,
        )
        heads = await conn.fetch(
            "SELECT id, last_seq FROM conversations WHERE id = ANY($1::BIGINT[])", mine
        )
    finally:
        await conn.close()
    by_conv: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_conv[row["conv_id"]].append(row)
    assert sorted(by_conv) == mine
    for conv_id, events in by_conv.items():
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), conv_id
        previous = GENESIS
        for e in events:
            assert bytes(e["prev_hash"]) == previous
            previous = bytes(e["hash"])
    assert {r["id"]: r["last_seq"] for r in heads} == {c: len(e) for c, e in by_conv.items()}
    # Each operation stored once: one event per post, one per creation, nothing else.
    assert len(rows) == len(results)
    creations = [key for key in results if key[0] == 0]
    assert len(mine) == len(creations)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=rounds)
def test_two_nodes_appending_at_once_keep_seqs_dense_and_keys_unique(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing, plan: list[list[tuple[int, int, str]]]
) -> None:
    asyncio.run(_scenario(postgres_dsn, tmp_path, ring, plan))
