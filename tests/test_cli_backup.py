"""``chatd backup`` and ``chatd restore`` through the real command, on SQLite (the
PostgreSQL twin is in tests/store/postgres/test_backup.py): a backup taken while messages
are being written restores into an empty place, passes ``chatd verify``, holds every event
of the snapshot and announces a new epoch; nothing is restored over existing data."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.store.sqlite import SqliteStore
from tests.conftest import create_conv, make_users, post, run_chatd


async def _all_events(store: SqliteStore) -> list[tuple[int, int]]:
    events, after = [], (0, 0)
    while page := await store.export_events(after, 1000):
        events += [(e.conv_id, e.seq) for e in page]
        after = events[-1]
    return events


async def test_a_backup_taken_under_writes_restores_verifies_and_declares_a_new_epoch(
    tmp_path: Path,
) -> None:
    live, backup, restored = tmp_path / "live", tmp_path / "backup", tmp_path / "restored"
    live.mkdir()
    ring = KeyRing.generate()
    write_key_file(live / "master.keys", ring, replace=False)
    (live / "attachments" / "ab").mkdir(parents=True)
    (live / "attachments" / "ab" / "1").write_bytes(b"sealed bytes")
    async with SqliteStore(live / "chatd.sqlite3", ring, checkpoint_seconds=0.05) as store:
        alice, bob = await make_users(store, "alice", "bob")
        conv = (await create_conv(store, alice, [bob], first="bonjour")).conv_id
        taking = asyncio.create_task(asyncio.to_thread(run_chatd, live, "backup", str(backup)))
        written = 0
        while not taking.done():  # the server goes on writing while the backup is taken
            await post(store, conv, alice, f"pendant la sauvegarde {written}")
            written += 1
        taken = await taking
        assert taken.returncode == 0, taken.stderr
        original_epoch = store.epoch
    assert written > 0
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["backend"] == "sqlite" and manifest["key_ids"] == [ring.active_id]
    assert manifest["attachment_files"] == 1
    assert not (backup / "master.keys").exists()  # the key file is kept apart
    assert b"bonjour" not in (backup / "chatd.sqlite3").read_bytes()

    restored.mkdir()
    shutil.copy(live / "master.keys", restored / "master.keys")
    done = run_chatd(restored, "restore", str(backup), "--json")
    assert done.returncode == 0, done.stderr
    new_epoch = json.loads(done.stdout)["epoch"]
    assert new_epoch != original_epoch
    checked = run_chatd(restored, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (restored / "attachments" / "ab" / "1").read_bytes() == b"sealed bytes"
    async with SqliteStore(restored / "chatd.sqlite3", ring) as again:
        assert again.epoch == new_epoch
        events = await _all_events(again)
    # Created + bonjour, then a prefix of the messages written during the backup.
    assert events == [(conv, seq) for seq in range(1, len(events) + 1)]
    assert 2 <= len(events) <= 2 + written

    twice = run_chatd(restored, "restore", str(backup))
    assert twice.returncode != 0 and "already exists" in twice.stderr
    into_used = run_chatd(live, "backup", str(backup))
    assert into_used.returncode != 0 and "is not empty" in into_used.stderr


def test_a_restore_refuses_an_incomplete_backup_or_another_backend(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    write_key_file(tmp_path / "master.keys", KeyRing.generate(), replace=False)
    missing = run_chatd(tmp_path, "restore", str(tmp_path / "b"))
    assert missing.returncode != 0 and "manifest.json is missing" in missing.stderr
    (tmp_path / "b" / "manifest.json").write_text(json.dumps({"backend": "postgres"}))
    (tmp_path / "b" / "database.pgdump").write_bytes(b"")
    other = run_chatd(tmp_path, "restore", str(tmp_path / "b"))
    assert other.returncode != 0 and "migrate-to" in other.stderr
    assert not (tmp_path / "chatd.sqlite3").exists()
