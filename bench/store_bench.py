"""Store benchmark: acked durable appends/s, window-read latency, and the raw ceiling.

Run:  .venv/bin/python -m bench.store_bench [--appends N] [--window-events N]

Prints one table.  Every figure comes from this run on this machine:

* ``appends/s @ W writers`` — W concurrent tasks each awaiting ``store.apply(PostMessage)``
  (sealed, hash-chained, idempotency-keyed, group-committed with ``synchronous=FULL``); an
  append counts when its coroutine returned, i.e. after COMMIT.
* ``ceiling`` — the same SQLite schema and pragmas, one aiosqlite ``executemany`` of 100
  pre-sealed event rows per transaction, nothing else: what the disk and SQLite allow.
* checkpoints (issue 13): appends/s at 100 writers with checkpoints only at the stop, every
  1 s and every 0.1 s; one checkpoint's cost; verify's replay of a log; the start check of
  ``chatd serve`` (:mod:`bench.checkpoint_costs`).
* ``window read`` — ``visible_window`` on a conversation of ``--window-events`` events
  (default 100,000): p50 and p99 over repeated reads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import msgpack

from bench.checkpoint_costs import bench_start_check, rows_for
from chatd.core.conversations import CreateConversation, MessageBody, PostMessage
from chatd.core.ids import ConvId, UserId
from chatd.core.records import NewUser, UserProfile
from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.envelope import Sealer, new_data_key
from chatd.crypto.keyring import KeyRing
from chatd.store.sqlite import SqliteStore
from chatd.store.sqlite.db import connect, migrate, transaction  # the ceiling only

TEXT = "Patient vu ce matin, plaie propre, pansement refait. Merci de rappeler demain."


async def _setup(
    path: Path, conversations: int, checkpoint_seconds: float = 5.0
) -> tuple[SqliteStore, int, list[int]]:
    store = SqliteStore(path, KeyRing.generate(), checkpoint_seconds=checkpoint_seconds)
    await store.open()
    alice = await store.create_user(NewUser("alice", "x", UserProfile("Alice", "Martin")))
    bob = await store.create_user(NewUser("bob", "x", UserProfile("Bob", "Durand")))
    convs = []
    for i in range(conversations):
        result = await store.apply(
            CreateConversation(UserId(alice.id), (bob.id,), f"Cas {i}", f"c{i}")
        )
        convs.append(result.conv_id)
    return store, alice.id, convs


async def bench_appends(
    workdir: Path, writers: int, total: int, checkpoint_seconds: float = 5.0
) -> tuple[float, float]:
    """(acked appends/s, mean batch size); checkpoints every ``checkpoint_seconds``."""
    store, sender, convs = await _setup(
        workdir / f"appends-{writers}-{checkpoint_seconds}.sqlite3",
        min(writers, 10),
        checkpoint_seconds,
    )
    per_writer = total // writers
    batches_before = store.group_commits

    async def writer(w: int) -> None:
        conv = convs[w % len(convs)]
        for j in range(per_writer):
            await store.apply(
                PostMessage(ConvId(conv), UserId(sender), MessageBody(TEXT), f"w{w}-{j}")
            )

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    batches = store.group_commits - batches_before
    await store.close()
    done = per_writer * writers
    return done / elapsed, done / max(batches, 1)


async def bench_ceiling(workdir: Path, transactions: int, rows_per_txn: int = 100) -> float:
    """Rows/s for executemany of pre-sealed rows, one transaction per ``rows_per_txn``."""
    conn = await connect(workdir / "ceiling.sqlite3", synchronous="FULL")
    await migrate(conn)
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
    started = time.perf_counter()
    for rows in batches:
        async with transaction(conn, "ceiling_batch"):
            await conn.executemany(
                "INSERT INTO events (conv_id, seq, kind, sender, ts, ciphertext, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    elapsed = time.perf_counter() - started
    await conn.close()
    return transactions * rows_per_txn / elapsed


async def bench_window(workdir: Path, events: int, reads: int) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, events returned) for visible_window on one large conversation."""
    store, sender, convs = await _setup(workdir / "window.sqlite3", 1)
    conv = convs[0]
    writers = 100

    async def writer(w: int) -> None:
        for j in range(w, events - 1, writers):
            await store.apply(
                PostMessage(ConvId(conv), UserId(sender), MessageBody(f"{TEXT} {j}"), f"f{j}")
            )

    await asyncio.gather(*(writer(w) for w in range(writers)))
    timings = []
    page_size = 0
    for _ in range(reads):
        started = time.perf_counter()
        page = await store.visible_window(sender, conv)
        timings.append((time.perf_counter() - started) * 1000)
        page_size = len(page.events)
    await store.close()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1], page_size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=20_000, help="appends per writer count")
    parser.add_argument("--window-events", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--start-chains", type=int, default=10_000, help="conversations")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    with tempfile.TemporaryDirectory(prefix="chatd-bench-") as tmp:
        workdir = Path(tmp)
        ceiling = await bench_ceiling(workdir, transactions=max(args.appends // 100, 50))
        rows: list[tuple[str, str, str]] = [
            ("ceiling: executemany 100 pre-sealed rows/txn", f"{ceiling:,.0f} rows/s", "100 %")
        ]
        for writers in (1, 10, 100):
            total = args.appends if writers > 1 else max(args.appends // 10, 100)
            rate, batch = await bench_appends(workdir, writers, total)
            rows.append(
                (
                    f"acked appends @ {writers:>3} writers (mean batch {batch:.1f})",
                    f"{rate:,.0f} /s",
                    f"{rate / ceiling:.0%}",
                )
            )
        # Checkpoints (issue 13): the same 100 writers, checkpoints only at the stop, then
        # more often than the default interval (5 s, longer than most of these runs).
        for seconds in (3600.0, 1.0, 0.1):
            rate, _ = await bench_appends(workdir, 100, args.appends, checkpoint_seconds=seconds)
            label = "at the stop only" if seconds > 60 else f"every {seconds:g} s"
            rows.append(
                (
                    f"acked appends @ 100 writers, checkpoints {label}",
                    f"{rate:,.0f} /s",
                    f"{rate / ceiling:.0%}",
                )
            )
        start_ms = await bench_start_check(workdir, args.start_chains)
        rows.extend(rows_for(10_000, start_ms, args.start_chains))
        p50, p99, size = await bench_window(workdir, args.window_events, args.reads)
        rows.append(
            (
                f"window read, {args.window_events:,}-event conv ({size} events)",
                f"p50 {p50:.2f} ms",
                f"p99 {p99:.2f} ms",
            )
        )
    print(f"chatd store benchmark — {loop_name}, synchronous=FULL, {os.cpu_count()} CPUs")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>16}  {'vs ceiling':>12}")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>16}  {ratio:>12}")


if __name__ == "__main__":
    asyncio.run(main())
