"""Signed checkpoints on real database files: what they catch, and what an operator does.

The attacker of :mod:`tests.store.test_tamper` has the database file and a sqlite3 shell,
not the key file.  Here they cut a conversation's tail and rewrite its head to match, drop a
whole conversation, cut the admin audit log, or put back an older copy of the database; a
damaged WAL loses acknowledged commits on its own.  Every chain still links, so only the
checkpoint log, kept outside the database, can tell.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from chatd.core.audit import ActionKind, Actor, AdminAction
from chatd.core.checkpoint_audit import DepartureKind
from chatd.core.checkpoints import ADMIN_AUDIT_CHAIN, RecordKind, parse_record
from chatd.crypto.keyring import KeyRing
from chatd.store.checkpoint_log import CheckpointLog
from chatd.store.sqlite import SqliteStore
from tests.conftest import create_conv, make_users, post

OPERATOR = Actor.os_user("root")


def log_of(db: Path) -> Path:
    return db.with_name(db.name + ".checkpoints")


def records(db: Path) -> list[object]:
    return [parse_record(line) for line in log_of(db).read_bytes().splitlines()]


async def build(db: Path, ring: KeyRing, messages: int = 3) -> tuple[int, int]:
    """Two conversations (ids 1 and 2) and an admin action; closed cleanly."""
    async with SqliteStore(db, ring) as store:
        alice, bob = await make_users(store, "alice", "bob")
        first = await create_conv(store, alice, [bob], first="hello")
        second = await create_conv(store, bob, [alice], first="other")
        for i in range(messages):
            await post(store, first.conv_id, alice, f"message {i}")
        await store.append_admin_action(
            AdminAction(OPERATOR, ActionKind.USER_DISABLED).with_target("2")
        )
    return first.conv_id, second.conv_id


@contextmanager
def shell(db: Path) -> Iterator[sqlite3.Connection]:
    """The attacker's connection: every append-only trigger dropped, then put back (the
    schema check would name a missing one; a careful attacker restores them)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        saved = triggers.fetchall()
        for name, _ in saved:
            conn.execute(f"DROP TRIGGER {name}")
        yield conn
        for _, sql in saved:
            conn.execute(sql)


async def problems_of(db: Path, ring: KeyRing, **kwargs: Path) -> list[str]:
    async with SqliteStore(db, ring) as store:
        report = await store.verify(**kwargs)
    return [str(p.reason) for p in report.problems]


async def departures_of(db: Path, ring: KeyRing) -> dict[str, DepartureKind]:
    async with SqliteStore(db, ring) as store:
        return {d.chain: d.kind for d in await store.checkpoint_departures()}


async def test_a_new_database_starts_its_log_and_every_clean_stop_checkpoints(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "chatd.sqlite3"
    async with SqliteStore(db, ring) as store:
        state = store.checkpoint_state()
        assert state.problems == () and state.last is not None
        assert (state.last.n, state.last.kind, state.last.size) == (1, RecordKind.BASE, 0)
    first, _ = await build(db, ring, messages=4)
    async with SqliteStore(db, ring) as store:
        last = store.checkpoint_state().last
        assert last is not None and last.epoch == store.epoch
        assert await store.checkpoint_departures() == []
        assert (await store.verify()).ok
    heads = {}
    for record in records(db):
        heads.update(dict(record.heads))  # type: ignore[attr-defined]
    assert heads[f"conv:{first}"].seq == 6  # created, hello, 4 messages
    assert heads[ADMIN_AUDIT_CHAIN].seq == 1


async def test_checkpoints_are_taken_every_interval_under_writes(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "chatd.sqlite3"
    async with SqliteStore(db, ring, checkpoint_seconds=0.05) as store:
        alice, bob = await make_users(store, "alice", "bob")
        conv = await create_conv(store, alice, [bob], first="hello")
        chain = f"conv:{conv.conv_id}"
        for i in range(3):
            before = store.checkpoint_state().last
            assert before is not None
            result = await post(store, conv.conv_id, bob, f"m{i}")
            n = before.n + 1
            async with asyncio.timeout(30):  # a generous bound on a busy machine
                # Nobody asks for one: the interval takes them, one of which holds the commit.
                while True:
                    taken = await store.wait_for_checkpoint(n)
                    head = dict(taken.heads).get(chain)
                    if head is not None and head.seq == result.last_seq:
                        break
                    n = taken.n + 1
        # Idle: no head moved, so no new record however long it waits.
        assert await store.take_checkpoint() is None
    assert [r.n for r in records(db)] == list(range(1, len(records(db)) + 1))  # type: ignore[attr-defined]


async def test_a_cut_tail_with_its_head_rewritten_is_detected(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "chatd.sqlite3"
    first, _ = await build(db, ring)
    with shell(db) as conn:
        conn.execute("DELETE FROM events WHERE conv_id = ? AND seq > 3", (first,))
        digest = conn.execute(
            "SELECT hash FROM events WHERE conv_id = ? AND seq = 3", (first,)
        ).fetchone()[0]
        conn.execute(
            "UPDATE conversations SET last_seq = 3, last_hash = ? WHERE id = ?", (digest, first)
        )
    assert await departures_of(db, ring) == {f"conv:{first}": DepartureKind.SHORTER}
    reasons = await problems_of(db, ring)
    assert any(f"conversation {first} ends at seq 3" in r for r in reasons), reasons


async def test_a_deleted_conversation_is_detected(tmp_path: Path, ring: KeyRing) -> None:
    db = tmp_path / "chatd.sqlite3"
    _, second = await build(db, ring)
    with shell(db) as conn:
        for table, column in (
            ("events", "conv_id"),
            ("memberships", "conv_id"),
            ("idempotency_keys", "conv_id"),
            ("read_markers", "conv_id"),
            ("conversations", "id"),
        ):
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (second,))
        conn.execute("DELETE FROM data_keys WHERE scope = 'conv' AND scope_id = ?", (second,))
    assert await departures_of(db, ring) == {f"conv:{second}": DepartureKind.VANISHED}
    reasons = await problems_of(db, ring)
    assert any(f"conversation {second} vanished" in r for r in reasons), reasons


async def test_a_cut_admin_audit_log_is_detected(tmp_path: Path, ring: KeyRing) -> None:
    db = tmp_path / "chatd.sqlite3"
    await build(db, ring)
    with shell(db) as conn:
        conn.execute("DELETE FROM admin_audit")
    assert await departures_of(db, ring) == {ADMIN_AUDIT_CHAIN: DepartureKind.VANISHED}


async def test_an_older_copy_is_refused_until_the_operator_declares_it(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "chatd.sqlite3"
    first, _ = await build(db, ring)
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(db, backup)  # closed cleanly: the WAL is folded into the file
    async with SqliteStore(db, ring) as store:
        alice = 1
        await post(store, first, alice, "after the backup")
        epoch = store.epoch
    shutil.copy(backup, db)
    assert await departures_of(db, ring) == {f"conv:{first}": DepartureKind.SHORTER}
    async with SqliteStore(db, ring) as store:
        record = await store.declare_rewind(
            audit=AdminAction(OPERATOR, ActionKind.REWIND_DECLARED).with_counts(departures=1)
        )
        assert record.kind is RecordKind.REWIND and record.epoch == store.epoch != epoch
        assert await store.checkpoint_departures() == []
        await post(store, first, alice, "a new history")
    assert (await problems_of(db, ring)) == []
    kinds = [r.kind for r in records(db)]  # type: ignore[attr-defined]
    assert RecordKind.REWIND in kinds and kinds[-1] is RecordKind.DELTA


def _wal_frames(wal: Path) -> tuple[int, int]:
    """The page size and number of frames of a WAL file."""
    header = wal.read_bytes()[:32]
    page_size = int.from_bytes(header[8:12], "big")
    return page_size, (wal.stat().st_size - 32) // (24 + page_size)


async def test_acked_messages_lost_with_a_damaged_wal_are_detected(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "live" / "chatd.sqlite3"
    db.parent.mkdir()
    first, _ = await build(db, ring)
    copy = tmp_path / "after-crash" / "chatd.sqlite3"
    copy.parent.mkdir()
    async with SqliteStore(db, ring) as store:
        acked = [await post(store, first, 1, f"acked {i}") for i in range(60)]
        assert await store.take_checkpoint() is not None
        # A kill -9 now: the file, its WAL and the checkpoint log as they are on disk.
        for suffix in ("", "-wal", ".checkpoints"):
            shutil.copy(db.with_name(db.name + suffix), copy.with_name(copy.name + suffix))
    wal = copy.with_name(copy.name + "-wal")
    page_size, frames = _wal_frames(wal)
    assert frames >= 2, "the acked messages must still be in the WAL for this test"
    with wal.open("r+b") as f:  # one damaged frame: SQLite drops it and every later one
        f.seek(32 + (frames // 2) * (24 + page_size) + 24 + 100)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with closing(sqlite3.connect(copy)) as conn:
        (kept,) = conn.execute("SELECT MAX(seq) FROM events WHERE conv_id = ?", (first,)).fetchone()
    assert (kept or 0) < acked[-1].last_seq, "SQLite silently dropped acked commits"
    assert await departures_of(copy, ring) in (
        {f"conv:{first}": DepartureKind.SHORTER},
        {f"conv:{first}": DepartureKind.VANISHED},
    )
    assert await problems_of(copy, ring)


async def test_a_log_cut_with_the_database_is_caught_by_an_exported_copy(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "chatd.sqlite3"
    first, _ = await build(db, ring)
    kept = log_of(db).read_bytes()  # the attacker's copy of the log, before what follows
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(db, backup)
    async with SqliteStore(db, ring) as store:
        await post(store, first, 1, "said after")
    exported = tmp_path / "off-host.checkpoints"
    exported.write_bytes(log_of(db).read_bytes())  # chatd checkpoints export, off the host
    # Both put back together on the host: locally, nothing can tell (see docs/reliability.md).
    shutil.copy(backup, db)
    log_of(db).write_bytes(kept)
    assert await problems_of(db, ring) == []
    reasons = await problems_of(db, ring, checkpoint_log=exported)
    assert any(f"conversation {first} ends at seq" in r for r in reasons), reasons


async def test_a_missing_log_for_a_database_with_history_is_a_problem(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "chatd.sqlite3"
    await build(db, ring)
    log_of(db).unlink()
    async with SqliteStore(db, ring) as store:
        assert store.checkpoint_state().problems
        assert await store.take_checkpoint() is None  # never starts a new log on its own
    assert not log_of(db).exists()
    assert any("no checkpoint log" in r for r in await problems_of(db, ring))


@pytest.mark.parametrize("where", ["first", "middle", "last"])
async def test_an_edited_log_is_reported_and_no_longer_extended(
    tmp_path: Path, ring: KeyRing, where: str
) -> None:
    db = tmp_path / "chatd.sqlite3"
    first, _ = await build(db, ring)
    async with SqliteStore(db, ring) as store:
        await post(store, first, 1, "one more")
    lines = log_of(db).read_bytes().splitlines()
    index = {"first": 0, "middle": len(lines) // 2, "last": len(lines) - 1}[where]
    lines[index] = lines[index].replace(b'"at":', b'"at":1', 1)  # a forged time
    log_of(db).write_bytes(b"".join(line + b"\n" for line in lines))
    reasons = await problems_of(db, ring)
    assert any("checkpoint log: record" in r for r in reasons), reasons
    size = log_of(db).stat().st_size
    async with SqliteStore(db, ring) as store:
        if where == "last":  # the server's start reads the tail: it sees the bad MAC
            assert store.checkpoint_state().problems
        await post(store, first, 1, "not checkpointed on a log that cannot be trusted")
        if where == "last":
            assert await store.take_checkpoint() is None
    if where == "last":
        assert log_of(db).stat().st_size == size


async def test_rotating_then_retiring_the_key_keeps_the_log_checkable(
    tmp_path: Path, ring: KeyRing
) -> None:
    db = tmp_path / "chatd.sqlite3"
    await build(db, ring)
    rotated = ring.with_new_active()
    async with SqliteStore(db, ring) as store:
        await store.rewrap_data_keys(rotated)
    retired = rotated.without(ring.active_id)
    async with SqliteStore(db, retired) as store:
        assert store.checkpoint_state().problems == ()
        assert (await store.verify()).ok


async def test_a_second_process_appending_is_followed(tmp_path: Path, ring: KeyRing) -> None:
    """An admin command beside the server: both append to one log, one chain of records."""
    db = tmp_path / "chatd.sqlite3"
    first, _ = await build(db, ring)
    async with SqliteStore(db, ring) as server:
        async with SqliteStore(db, ring) as admin:
            await admin.append_admin_action(
                AdminAction(OPERATOR, ActionKind.USER_ENABLED).with_target("2")
            )
        await post(server, first, 1, "meanwhile")
        assert await server.take_checkpoint() is not None
    assert (await problems_of(db, ring)) == []
    assert await departures_of(db, ring) == {}


async def test_the_first_open_after_the_upgrade_starts_the_log(
    tmp_path: Path, ring: KeyRing
) -> None:
    """A database with history from before checkpoints (schema 9) has no log to lose: its
    first open by this code starts one, from the database as it is."""
    from tests.store.test_row_macs import rewind_to_9

    db = tmp_path / "chatd.sqlite3"
    first, _ = await build(db, ring)
    log_of(db).unlink()
    rewind_to_9(db)  # migrations 10 to 12 undone: the schema of the code before
    async with SqliteStore(db, ring) as store:
        state = store.checkpoint_state()
        assert state.problems == () and state.last is not None
        assert state.last.kind is RecordKind.BASE and f"conv:{first}" in dict(state.last.heads)
    assert await problems_of(db, ring) == []


class _ObservedLog(CheckpointLog):
    """The log, telling the test when a thread starts waiting for its flock."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.waiting = threading.Event()

    def acquire(self) -> int:
        self.waiting.set()
        return super().acquire()


async def test_a_checkpoint_cancelled_while_waiting_for_the_flock_does_not_keep_it(
    tmp_path: Path, ring: KeyRing
) -> None:
    """Regression: a stop cancelled the periodic checkpoint while its thread waited for the
    log's flock; the thread got it afterwards and nobody closed it, so the clean stop's
    checkpoint waited forever (``chatd serve`` hung when the broker was down at start)."""
    db = tmp_path / "chatd.sqlite3"
    first, _ = await build(db, ring)
    async with asyncio.timeout(30):  # a generous bound: the bug waits forever
        async with SqliteStore(db, ring) as store:
            observed = _ObservedLog(log_of(db))
            store._history.checkpoints.log = observed
            other_process = CheckpointLog(log_of(db)).acquire()  # an admin command, say
            try:
                await post(store, first, 1, "moved")
                taking = asyncio.create_task(store.take_checkpoint())
                assert await asyncio.to_thread(observed.waiting.wait, 30)
                taking.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await taking
            finally:
                CheckpointLog.release(other_process)
            taken = await store.take_checkpoint()
            assert taken is not None and dict(taken.heads)[f"conv:{first}"].seq == 6
        # ...and the clean stop's checkpoint got the flock too.
    assert (await problems_of(db, ring)) == []
