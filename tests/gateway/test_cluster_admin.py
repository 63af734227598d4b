"""Admin commands that need the database alone, on PostgreSQL with nodes running: a key
rotation, a key's retirement, a new epoch and a declared restore are refused while any
node serves (SQLite's server lock has the same rule, tests/test_server_lock.py), and a
node does not start while such a command holds the database."""

from __future__ import annotations

from pathlib import Path

from chatd.crypto.keyring import load_key_file
from tests.conftest import run_chatd
from tests.gateway.conftest import stop_server
from tests.gateway.test_cluster import shared, start_nodes

__all__ = ["shared"]  # the fixture: the storage every node mounts

EXIT_BUSY = 5


def test_running_nodes_block_the_commands_that_need_the_database_alone(
    tmp_path: Path, shared: Path, postgres_dsn: str
) -> None:
    env = {"CHATD_DATABASE_URL": postgres_dsn}
    nodes = start_nodes(tmp_path, shared, postgres_dsn, None, ("a", "b"))
    try:
        keys_before = load_key_file(shared / "master.keys")
        for args in (
            ("keys", "rotate"),
            ("keys", "retire", keys_before.active_id),
            ("store", "new-epoch"),
            ("checkpoints", "declare-rewind"),
        ):
            refused = run_chatd(shared, *args, env=env)
            assert refused.returncode == EXIT_BUSY, (args, refused.stderr)
            assert "stop every node before you" in refused.stderr, args
        assert load_key_file(shared / "master.keys") == keys_before  # nothing changed
        stop_server(nodes.pop())  # one node of two stopped: still refused
        refused = run_chatd(shared, "keys", "rotate", env=env)
        assert refused.returncode == EXIT_BUSY, refused.stderr
    finally:
        for node in nodes:
            stop_server(node)
    rotated = run_chatd(shared, "keys", "rotate", env=env)  # every node stopped
    assert rotated.returncode == 0, rotated.stderr
    assert load_key_file(shared / "master.keys").active_id != keys_before.active_id
