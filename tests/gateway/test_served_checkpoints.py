"""A real ``chatd serve`` checkpoints what it committed when it stops cleanly (SIGTERM), and
refuses, at its next start, a database that was put back behind that checkpoint."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from chatd.core.checkpoints import parse_record
from tests.conftest import chatd_env
from tests.gateway.conftest import admin_on, start_server, stop_server

EXIT_REWOUND = 7


async def test_a_clean_stop_checkpoints_what_the_server_committed(
    tmp_path: Path, password_hash: str
) -> None:
    # Checkpoints only at the stop: what the log holds afterwards is the stop's doing.
    server = start_server(tmp_path, {"CHATD_CHECKPOINT_SECONDS": "3600"})
    try:
        async for admin in admin_on(server, password_hash):
            alice, bob = await admin.users(2)
            client = await admin.connect(alice)
            conv = await client.create([bob.id], "Équipe mobile")
            backup = tmp_path / "backup.sqlite3"
            # A consistent copy while the server runs (SQLite's online backup), before the
            # messages: what an operator would restore.
            with (
                closing(sqlite3.connect(server.data_dir / "chatd.sqlite3")) as source,
                closing(sqlite3.connect(backup)) as target,
            ):
                source.backup(target)
            for i in range(3):
                last = (await client.send(conv, f"message {i}"))["last_seq"]
    finally:
        stop_server(server)
    log = server.data_dir / "chatd.sqlite3.checkpoints"
    heads: dict[str, int] = {}
    for line in log.read_bytes().splitlines():
        for chain, head in parse_record(line).heads:
            heads[chain] = head.seq
    assert heads[f"conv:{conv}"] == last

    # The database put back to an older copy: the server refuses to serve it.
    shutil.copy(backup, server.data_dir / "chatd.sqlite3")
    for suffix in ("-wal", "-shm"):
        (server.data_dir / f"chatd.sqlite3{suffix}").unlink(missing_ok=True)
    refused = subprocess.run(
        [sys.executable, "-m", "chatd", "serve"],
        env=chatd_env(server.data_dir, {"CHATD_PORT": "0"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == EXIT_REWOUND, refused
    assert f"conversation {conv}" in refused.stderr
