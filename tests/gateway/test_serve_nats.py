"""One node on SQLite with CHATD_BROKER_URL: ``chatd user disable``, another process, closes
the user's sockets through NATS at once, not at the server's next revocation sweep (which
this server runs only once an hour, so that nothing else can have closed them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.gateway.protocol import CloseCode
from tests.conftest import run_chatd
from tests.gateway.conftest import ServerProcess, admin_on, start_server, stop_server
from tests.servers.processes import free_port

CLOSE_WITHIN_S = 20.0  # generous; the sweep would take an hour


@pytest.fixture
def nats_server_process(tmp_path: Path, nats_url: str) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path, {"CHATD_BROKER_URL": nats_url, "CHATD_REVOCATION_SECONDS": "3600"}
    )
    yield server
    stop_server(server)


async def test_an_admin_disable_closes_the_sockets_at_once_through_nats(
    nats_server_process: ServerProcess, password_hash: str, nats_url: str
) -> None:
    server = nats_server_process
    async for admin in admin_on(server, password_hash):
        target, bystander = await admin.user(), await admin.user()
        phone = await admin.connect(target)
        laptop = await admin.connect(target)
        other = await admin.connect(bystander)
        started = time.monotonic()
        done = await asyncio.to_thread(
            run_chatd,
            server.data_dir,
            "user",
            "disable",
            target.login,
            env={"CHATD_BROKER_URL": nats_url},
        )
        assert done.returncode == 0, done.stderr
        for device in (phone, laptop):
            code, _ = await device.wait_closed(CLOSE_WITHIN_S)
            assert code == CloseCode.USER_DISABLED
        assert time.monotonic() - started < CLOSE_WITHIN_S
        await other.flush()
        assert other.close_code is None  # only that user's sockets


def test_serve_refuses_to_start_deaf_but_an_admin_command_goes_on(tmp_path: Path) -> None:
    dead = {"CHATD_BROKER_URL": f"nats://127.0.0.1:{free_port('127.0.0.1')}", "CHATD_PORT": "0"}
    data_dir = tmp_path / "var"
    served = run_chatd(data_dir, "serve", env=dead)
    assert served.returncode != 0
    assert "did not answer within" in served.stderr + served.stdout
    assert "chatd listening" not in served.stdout
    listed = run_chatd(data_dir, "user", "list", env=dead)
    assert listed.returncode == 0, listed.stderr
