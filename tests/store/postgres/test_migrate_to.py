"""``chatd migrate-to URL``: a SQLite deployment moves to PostgreSQL as it is — the same
seqs, hashes, sealed payloads, MACs and epoch — and ``chatd verify`` passes after the move."""

from __future__ import annotations

import json
from pathlib import Path

from chatd.core.audit import ActionKind, Actor, AdminAction
from chatd.core.events import Event
from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.store.contract import Store
from chatd.store.postgres.store import PostgresStore
from chatd.store.sqlite import SqliteStore
from tests.conftest import create_conv, leave, make_users, post, run_chatd


async def _events(store: Store) -> list[Event]:
    events: list[Event] = []
    after = (0, 0)
    while page := await store.export_events(after, 1000):
        events += page
        after = (page[-1].conv_id, page[-1].seq)
    return events


async def test_a_sqlite_database_moves_to_postgres_as_it_is(
    tmp_path: Path, postgres_dsn: str
) -> None:
    ring = KeyRing.generate()
    write_key_file(tmp_path / "master.keys", ring, replace=False)
    async with SqliteStore(tmp_path / "chatd.sqlite3", ring) as lite:
        alice, bob, carol = await make_users(lite, "alice", "bob", "carol")
        kept = (await create_conv(lite, alice, [bob, carol], first="bonjour")).conv_id
        for i in range(5):
            await post(lite, kept, bob, f"message {i}")
        await leave(lite, kept, carol)
        gone = (await create_conv(lite, carol, [alice], first="à effacer")).conv_id
        await lite.shred_conversation(
            gone, audit=AdminAction(Actor.os_user("root"), ActionKind.CONVERSATION_SHREDDED)
        )
        before = await _events(lite)
        epoch = lite.epoch

    moved = run_chatd(tmp_path, "migrate-to", postgres_dsn, "--json")
    assert moved.returncode == 0, moved.stderr
    said = json.loads(moved.stdout)
    assert said["rows"]["events"] == 10 and said["rows"]["conversations"] == 2
    assert (tmp_path / "chatd.checkpoints").exists()

    env = {"CHATD_DATABASE_URL": postgres_dsn}
    checked = run_chatd(tmp_path, "verify", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    async with PostgresStore(
        postgres_dsn, ring, checkpoint_log=tmp_path / "chatd.checkpoints", migrate=False
    ) as pg:
        assert pg.epoch == epoch
        assert await _events(pg) == before  # opened with the same keys: the same events
        # The history goes on where it was: the next seq, on the same chain.
        appended = await post(pg, kept, alice, "sur PostgreSQL")
        assert appended.first_seq == 9  # created, bonjour, 5 messages, left

    in_the_way = run_chatd(tmp_path, "migrate-to", postgres_dsn)
    assert in_the_way.returncode != 0 and "chatd.checkpoints already exists" in in_the_way.stderr
    (tmp_path / "chatd.checkpoints").rename(tmp_path / "moved.checkpoints")
    again = run_chatd(tmp_path, "migrate-to", postgres_dsn)
    assert again.returncode != 0 and "already holds chatd data" in again.stderr
