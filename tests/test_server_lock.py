"""A running server holds its database: key rotation and a second server refuse loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chatd.crypto.keyring import load_key_file
from tests.conftest import chatd_env
from tests.gateway.conftest import LENIENT, start_server, stop_server


def run_chatd(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args],
        env=chatd_env(data_dir, {"CHATD_PORT": "0"}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_running_server_blocks_rotation_and_a_second_server(tmp_path: Path) -> None:
    server = start_server(tmp_path, LENIENT)
    try:
        keys_before = load_key_file(server.data_dir / "master.keys")
        for args in (("keys", "rotate"), ("keys", "retire", keys_before.active_id), ("serve",)):
            result = run_chatd(server.data_dir, *args)
            assert result.returncode == 5, (args, result)
            assert "stop it before you" in result.stderr
        # Nothing was changed behind the server's back.
        assert load_key_file(server.data_dir / "master.keys") == keys_before
        assert run_chatd(server.data_dir, "verify").returncode == 0  # reads are fine
    finally:
        stop_server(server)
    # Once the server is gone the same rotation goes through.
    rotated = run_chatd(server.data_dir, "keys", "rotate")
    assert rotated.returncode == 0, rotated
    assert load_key_file(server.data_dir / "master.keys").active_id != keys_before.active_id
