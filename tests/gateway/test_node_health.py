"""``/healthz`` names the node and says whether it can serve (issue 14: node identity and
health), through a real ``chatd serve``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tests.conftest import run_chatd
from tests.gateway.conftest import admin_on, start_server, stop_server


def health(base_url: str) -> httpx.Response:
    return httpx.get(f"{base_url}/healthz", timeout=10)


def test_the_node_is_named_and_a_database_that_stops_answering_makes_it_unavailable(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, {"CHATD_NODE_ID": "noeud-a"})
    try:
        first = health(server.base_url)
        assert first.status_code == 200, first.text
        assert first.json()["node"] == "noeud-a" and first.json()["store"] == "ok"
        # The database file overwritten under the running server (a failed disk, an
        # operator's mistake): every read now fails, and the node says it cannot serve.
        database = server.data_dir / "chatd.sqlite3"
        size = database.stat().st_size
        with database.open("r+b") as f:
            f.write(os.urandom(size))
        for suffix in ("-wal", "-shm"):
            path = server.data_dir / f"chatd.sqlite3{suffix}"
            if path.exists():
                with path.open("r+b") as f:
                    f.write(os.urandom(path.stat().st_size))
        deadline = time.monotonic() + 30  # a generous bound: the next read sees it
        while (answer := health(server.base_url)).status_code != 503:
            assert time.monotonic() < deadline, answer.text
        said = answer.json()
        assert (said["status"], said["store"], said["node"]) == (
            "unavailable",
            "unavailable",
            "noeud-a",
        )
    finally:
        server.proc.kill()
        server.proc.wait(15)


async def test_a_node_restarted_under_its_id_frees_the_sessions_of_its_previous_life(
    tmp_path: Path, password_hash: str
) -> None:
    """After a kill -9, a node's live-session rows would count against the per-user cap
    until they went stale (30 s); restarted under the same CHATD_NODE_ID it ends them at
    once, so the user reconnects at once."""
    settings = {"CHATD_NODE_ID": "noeud-b", "CHATD_SESSIONS_PER_USER": "1"}
    server = start_server(tmp_path, settings)
    try:
        async for admin in admin_on(server, password_hash):
            alice = await admin.user()
            await admin.connect(alice)  # the one session alice may have
            server.proc.kill()  # kill -9: no clean end of its rows
            server.proc.wait(15)
            server = start_server(tmp_path, settings)
            admin.server = server
            again = await admin.connect(alice)
            assert again.hello is not None, "refused: the dead node's row still counted"
    finally:
        stop_server(server)


def test_the_node_id_on_the_command_line_wins_over_the_setting_and_is_checked(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, {"CHATD_NODE_ID": "reglage"}, argv=("--node-id", "ligne-c"))
    try:
        assert health(server.base_url).json()["node"] == "ligne-c"
    finally:
        stop_server(server)
    refused = run_chatd(tmp_path / "other", "serve", "--node-id", "nœud c")
    assert refused.returncode == 2
    assert "--node-id" in refused.stderr and "chatd listening" not in refused.stdout
