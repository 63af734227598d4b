"""``chatd serve`` refuses a database behind its last checkpoint; ``chatd checkpoints`` shows,
exports and declares (real ``chatd`` subprocesses on a real data directory)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from chatd.crypto.keyring import load_key_file
from chatd.store.sqlite import SqliteStore
from tests.conftest import post, run_chatd
from tests.store.test_checkpoints import build

FRENCH = {"LANG": "fr_FR.UTF-8"}
EXIT_REWOUND = 7


def rewound(data: Path) -> int:
    """A data directory whose database was put back to an older copy; the conversation."""
    assert run_chatd(data, "init").returncode == 0
    db, ring = data / "chatd.sqlite3", load_key_file(data / "master.keys")
    first, _ = asyncio.run(build(db, ring))
    shutil.copy(db, data / "backup.sqlite3")

    async def more() -> None:
        async with SqliteStore(db, ring) as store:
            await post(store, first, 1, "lost by the restore")

    asyncio.run(more())
    shutil.copy(data / "backup.sqlite3", db)
    return first


def test_serve_refuses_a_rewound_database_until_the_rewind_is_declared(tmp_path: Path) -> None:
    first = rewound(tmp_path)
    port = {"CHATD_PORT": "0", "CHATD_HOST": "127.0.0.1"}
    refused = run_chatd(tmp_path, "serve", env=port)
    assert refused.returncode == EXIT_REWOUND, refused
    assert f"BEHIND conversation {first} ends at seq 5, before checkpoint" in refused.stderr
    assert "chatd checkpoints declare-rewind" in refused.stderr
    french = run_chatd(tmp_path, "serve", env=port | FRENCH)
    assert french.returncode == EXIT_REWOUND
    assert "La base est en retard sur son dernier point de contrôle" in french.stderr

    shown = run_chatd(tmp_path, "checkpoints", "show", "--json")
    assert shown.returncode == 1 and json.loads(shown.stdout)["extends"] is False
    epoch_before = json.loads(shown.stdout)["last"]["epoch"]

    declared = run_chatd(tmp_path, "checkpoints", "declare-rewind", "--json")
    assert declared.returncode == 0, declared
    said = json.loads(declared.stdout)
    assert said["departures"] == 1 and said["epoch"] != epoch_before

    shown = run_chatd(tmp_path, "checkpoints", "show", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["extends"] is True
    assert json.loads(shown.stdout)["last"]["kind"] == "rewind"
    audit = run_chatd(tmp_path, "audit")
    assert "restore of an older database declared" in audit.stdout
    assert run_chatd(tmp_path, "verify").returncode == 0


def test_export_copies_the_records_as_they_are(tmp_path: Path) -> None:
    assert run_chatd(tmp_path, "init").returncode == 0
    db, ring = tmp_path / "chatd.sqlite3", load_key_file(tmp_path / "master.keys")
    asyncio.run(build(db, ring))
    log = (tmp_path / "chatd.sqlite3.checkpoints").read_bytes()
    off_host = tmp_path / "elsewhere" / "copy.checkpoints"
    off_host.parent.mkdir()
    done = run_chatd(tmp_path, "checkpoints", "export", "--output", str(off_host))
    assert done.returncode == 0 and off_host.read_bytes() == log
    tail = run_chatd(tmp_path, "checkpoints", "export", "--since", "2")
    assert tail.stdout.encode() == b"".join(line + b"\n" for line in log.splitlines()[1:])
    assert run_chatd(tmp_path, "verify", "--checkpoints", str(off_host)).returncode == 0
    again = run_chatd(tmp_path, "checkpoints", "export", "--output", str(off_host))
    assert again.returncode == 0 and off_host.read_bytes() == log + log  # appends, never cuts
