"""chatd-cli warns when the server serves a rewound log under the same epoch, and accepts the
new history after a declared epoch change (issue 13; ``docs/protocol.md`` §9.2).

A real server on its own data directory, real ``chatd-cli watch`` processes.  The whole data
directory is copied while the server is stopped (database, WAL, key file, and whatever else
lies there: a full-host restore brings everything back), messages are received, then the copy
is put back and the server started again under the same epoch: the history Bob saw is gone.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tests.cli.conftest import FRENCH, CliUser, write_session
from tests.conftest import run_chatd
from tests.gateway.client import WsClient
from tests.gateway.conftest import (
    HOUR_MS,
    LENIENT,
    Account,
    Admin,
    ServerProcess,
    start_server,
    stop_server,
)


def restore(backup: Path, data_dir: Path) -> None:
    """What an operator restoring the host does: the whole directory, as it was."""
    shutil.rmtree(data_dir)
    shutil.copytree(backup, data_dir)


def heads_file(user: CliUser) -> dict[str, object]:
    (server_dir,) = (user.config_dir / "servers").iterdir()
    data: dict[str, object] = json.loads((server_dir / f"heads-{user.account.id}.json").read_text())
    return data


async def post(server: ServerProcess, alice: Account, conv: int, *texts: str) -> None:
    client = await WsClient.open(server.ws_url, alice.token)
    try:
        for text in texts:
            await client.send(conv, text)
    finally:
        await client.close()


async def test_watch_warns_of_a_rewound_log_and_accepts_a_declared_one(
    tmp_path: Path, password_hash: str
) -> None:
    server = start_server(tmp_path, LENIENT)
    port = server.base_url.rsplit(":", 1)[1]
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    try:
        alice, bob_account = await admin.users(2)
        a = await admin.connect(alice)
        conv = await a.create([bob_account.id], text="avant la sauvegarde")  # 1, 2
    finally:
        await admin.close()
    stop_server(server)
    backup = tmp_path / "backup"
    shutil.copytree(server.data_dir, backup)

    def restart() -> ServerProcess:
        return start_server(tmp_path, {**LENIENT, "CHATD_PORT": port})

    bob = CliUser(bob_account, tmp_path / "cli-bob", server.base_url)
    now = time.time_ns() // 1_000_000
    write_session(bob.config_dir, server.base_url, bob_account, now + 8 * HOUR_MS, "Bob")
    server = restart()
    watching = bob.watch()
    try:
        # Bob receives two messages: his chatd-cli remembers the head, seq 4.
        await post(server, alice, conv, "Tension 14/9", "Dose de 18 h donnée")
        watching.wait_stdout("Dose de 18 h donnée")
        pushed = {e["seq"]: e for e in watching.json_lines() if e["op"] == "event"}
        assert heads_file(bob)["heads"] == {str(conv): [4, pushed[4]["hash"]]}

        # The host is restored from the copy: the log is back at seq 2, same epoch.  Other
        # messages take seqs 3 and 4.  The running watch reconnects and is told by sync.
        stop_server(server)
        restore(backup, server.data_dir)
        server = restart()
        await post(server, alice, conv, "Autre chose", "Encore autre chose")
        watching.wait_stderr(f"rewrote the history of conversation {conv}")
        assert "WARNING" in "\n".join(watching.stderr)
        assert not any("Autre chose" in line for line in watching.stdout)
        assert watching.interrupt() == 0

        # A new run, in French, knows the head from the heads file: the list says seq 4 has
        # another hash now.
        bob.lang = FRENCH
        second = bob.start("watch", "--json")
        french = "ATTENTION\u00a0: le serveur a réécrit l'historique de la conversation"
        second.wait_stderr(f"{french} {conv} ")
        assert second.interrupt() == 0
        assert heads_file(bob)["heads"] == {str(conv): [4, pushed[4]["hash"]]}  # as Bob saw it
    finally:
        stop_server(server)

    # The operator declares the restore: a new epoch.  Restored once more from the copy, so
    # that seq 4 will again name another event than the one Bob saw.
    restore(backup, server.data_dir)
    declared = run_chatd(server.data_dir, "store", "new-epoch", "--json")
    assert declared.returncode == 0, declared.stderr
    server = restart()
    try:
        bob.lang = "en_GB.UTF-8"
        third = bob.watch()
        await post(server, alice, conv, "Après la restauration déclarée", "Suite")
        third.wait_stdout("Suite")
        assert [e["seq"] for e in third.json_lines() if e["op"] == "event"] == [3, 4]
        assert not any("rewrote" in line or "WARNING" in line for line in third.stderr)
        assert third.interrupt() == 0
        saved = heads_file(bob)
        assert isinstance(saved["epoch"], str) and saved["epoch"] in declared.stdout
        last = [e for e in third.json_lines() if e["op"] == "event"][-1]
        assert saved["heads"] == {str(conv): [4, last["hash"]]}
    finally:
        stop_server(server)
