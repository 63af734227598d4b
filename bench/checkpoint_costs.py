"""What signed checkpoints cost (issue 13), for the store benchmark's table.

* appends/s at 100 writers with a checkpoint every 1 s and every 0.1 s, beside the same run
  with checkpoints only at the stop (an interval longer than the run);
* one checkpoint of ``moved`` heads among ``chains`` chains: the Merkle update, the MAC and
  the line (no I/O), then the append and its fsync;
* the start-up check (``checkpoint_departures``) of a database of ``chains`` conversations;
* ``verify``'s replay of the whole log.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from chatd.core.checkpoint_audit import RawLine, audit_records
from chatd.core.checkpoints import (
    NO_PREVIOUS,
    Checkpoint,
    Head,
    HeadMap,
    RecordKind,
    line_hash,
    parse_record,
)
from chatd.core.conversations import CreateConversation
from chatd.core.ids import UserId
from chatd.core.records import NewUser, UserProfile
from chatd.crypto.keyring import KeyRing
from chatd.store.checkpoint_log import CheckpointLog
from chatd.store.sqlite import SqliteStore

Row = tuple[str, str, str]


def _heads(chains: int, salt: int) -> dict[str, Head]:
    return {f"conv:{i}": Head(salt + i, (salt + i).to_bytes(32, "big")) for i in range(chains)}


def bench_one_checkpoint(chains: int, moved: int, rounds: int = 50) -> tuple[float, float]:
    """(ms to build one record of ``moved`` heads among ``chains``, ms to append + fsync)."""
    heads = HeadMap.of(_heads(chains, 0).items())
    key = b"k" * 32
    build, write = [], []
    with tempfile.TemporaryDirectory(prefix="chatd-bench-") as tmp:
        log = CheckpointLog(Path(tmp) / "bench.checkpoints")
        end = 0
        fd = log.acquire()
        try:
            for r in range(rounds):
                started = time.perf_counter()
                current = {
                    f"conv:{(r * moved + i) % chains}": Head(10**6 + r, bytes(32))
                    for i in range(moved)
                }
                changed = heads.moved(current)
                heads.advance(changed)  # as the checkpointer does: in place
                record = Checkpoint(
                    r + 1,
                    RecordKind.DELTA,
                    "e" * 32,
                    10,
                    0,
                    tuple(changed),
                    len(heads.heads),
                    heads.root,
                    "0" * 64,
                ).signed("kid", key)
                line = record.line()
                middle = time.perf_counter()
                end = log.append(fd, line, end)
                write.append(time.perf_counter() - middle)
                build.append(middle - started)
        finally:
            log.release(fd)
    return statistics.median(build) * 1000, statistics.median(write) * 1000


def bench_replay(chains: int, records: int) -> float:
    """ms for verify's replay of a log: a base of ``chains`` then ``records`` deltas of 10."""
    key, lines, heads = b"k" * 32, [], HeadMap()
    prev = NO_PREVIOUS
    for n in range(1, records + 2):
        if n == 1:
            moved = list(_heads(chains, 0).items())
        else:
            moved = [
                (f"conv:{(n * 10 + i) % chains}", Head(10**6 + n, bytes(32))) for i in range(10)
            ]
        for chain, head in moved:
            heads.put(chain, head)
        kind = RecordKind.BASE if n == 1 else RecordKind.DELTA
        record = Checkpoint(
            n, kind, "e" * 32, 10, 0, tuple(moved), len(heads.heads), heads.root, prev
        ).signed("kid", key)
        raw = record.line()
        lines.append(raw)
        prev = line_hash(raw)
    started = time.perf_counter()
    parsed = [RawLine(raw, parse_record(raw)) for raw in lines]
    audit = audit_records(parsed, lambda kid: key)
    assert audit.ok
    return (time.perf_counter() - started) * 1000


async def bench_start_check(workdir: Path, chains: int) -> float:
    """ms for ``checkpoint_departures`` (what ``chatd serve`` runs before it listens) on a
    database of ``chains`` conversations."""
    path, ring = workdir / f"start-{chains}.sqlite3", KeyRing.generate()
    async with SqliteStore(path, ring) as store:
        alice = await store.create_user(NewUser("alice", "x", UserProfile("Alice", "Martin")))
        bob = await store.create_user(NewUser("bob", "x", UserProfile("Bob", "Durand")))
        await asyncio.gather(
            *(
                store.apply(CreateConversation(UserId(alice.id), (bob.id,), f"Cas {i}", f"c{i}"))
                for i in range(chains)
            )
        )
    async with SqliteStore(path, ring) as store:
        started = time.perf_counter()
        assert await store.checkpoint_departures() == []
        return (time.perf_counter() - started) * 1000


def rows_for(replay_chains: int, start_ms: float, start_chains: int) -> list[Row]:
    rows: list[Row] = []
    for chains in (1_000, 100_000):
        build_ms, write_ms = bench_one_checkpoint(chains, moved=100)
        rows.append(
            (
                f"one checkpoint, 100 moved of {chains:,} chains",
                f"{build_ms:.2f} ms",
                f"+ {write_ms:.2f} ms fsync",
            )
        )
    replay_ms = bench_replay(replay_chains, records=1_000)
    rows.append(
        (
            f"verify: replay a log ({replay_chains:,} chains, 1,000 deltas)",
            f"{replay_ms:.0f} ms",
            "",
        )
    )
    rows.append((f"serve's start check, {start_chains:,} conversations", f"{start_ms:.0f} ms", ""))
    return rows
