"""The store epoch through the real server: declared by the operator, seen by clients."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_chatd
from tests.gateway.client import WsClient
from tests.gateway.conftest import LENIENT, Admin, start_server, stop_server


async def test_a_declared_epoch_makes_clients_resync_from_their_window(
    tmp_path: Path, password_hash: str
) -> None:
    server = start_server(tmp_path, LENIENT)
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    try:
        alice, bob = await admin.users(2)
        a = await admin.connect(alice)
        conv = await a.create([bob.id], text="avant la restauration")  # 1, 2
        assert a.hello is not None
        old_epoch = a.hello["epoch"]
        refused = run_chatd(server.data_dir, "store", "new-epoch")
        assert refused.returncode == 5 and "stop it before you" in refused.stderr
    finally:
        await admin.close()
        stop_server(server)

    declared = run_chatd(server.data_dir, "store", "new-epoch", "--json")
    assert declared.returncode == 0, declared.stderr
    assert old_epoch not in declared.stdout

    server = start_server(tmp_path, LENIENT)
    try:
        b = await WsClient.open(server.ws_url, bob.token)
        try:
            assert b.hello is not None
            new_epoch = b.hello["epoch"]
            assert new_epoch != old_epoch and new_epoch in declared.stdout
            reply = await b.sync({conv: 2}, epoch=old_epoch)
            assert reply["epoch_changed"] is True and reply["epoch"] == new_epoch
            assert b.seqs(conv) == [1, 2]  # the window again, not trusted positions
        finally:
            await b.close()
    finally:
        stop_server(server)
