"""A real chatd gateway served from the test's own event loop, on 127.0.0.1.

For the tests that must choose a part the ``chatd serve`` subprocess cannot be given — a
broker that loses, repeats and reorders publications — or that call a service of the
running server (an account disabled through the services, not through the database).
Everything else is the production wiring (:mod:`chatd.wiring`) and real sockets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from chatd.broker.base import Broker
from chatd.config import Settings
from chatd.core.clock import wall_clock_ms
from chatd.core.records import NewUser, SessionToken, UserProfile
from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.gateway.context import Gateway
from chatd.gateway.server import bind, uvicorn_config
from chatd.services.auth import new_token, token_digest
from chatd.wiring import Process, build_gateway, running
from tests.gateway.conftest import HOUR_MS, TERMS

START_TIMEOUT = 30.0


@dataclass
class InProcessServer:
    process: Process
    gateway: Gateway
    ws_url: str

    async def user(self, name: str) -> tuple[int, str]:
        """A user who accepted the terms, and a token of theirs."""
        login = f"{name}{uuid.uuid4().hex[:8]}"
        store = self.process.store
        user = await store.create_user(
            NewUser(login, "not-a-hash", UserProfile(name, "Test", "Infirmière", "CH", ""))
        )
        await store.set_terms_accepted(user.id, TERMS)
        token = new_token()
        now = wall_clock_ms()
        await store.create_session_token(
            SessionToken(token_digest(token), user.id, now, now + HOUR_MS)
        )
        return user.id, token


@asynccontextmanager
async def serving(tmp: Path, broker: Broker | None = None) -> AsyncIterator[InProcessServer]:
    data_dir = tmp / "var"
    data_dir.mkdir(parents=True)
    write_key_file(data_dir / "master.keys", KeyRing.generate(), replace=False)
    settings = Settings.from_env(
        {
            "CHATD_DATA_DIR": str(data_dir),
            "CHATD_HOST": "127.0.0.1",
            "CHATD_PORT": "0",
            "CHATD_TERMS_VERSION": TERMS,
            "CHATD_WS_RATE": "100000",
            "CHATD_WS_BURST": "100000",
            "CHATD_SQLITE_SYNCHRONOUS": "NORMAL",
        }
    )
    async with running(settings, broker) as process:
        gateway = build_gateway(process)
        server = uvicorn.Server(uvicorn_config(settings, gateway))
        server.config.log_level = "warning"
        sock = bind(settings.gateway.host, 0)
        port = sock.getsockname()[1]
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while not server.started:  # uvicorn has no started event to await
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.01)
            yield InProcessServer(process, gateway, f"ws://127.0.0.1:{port}/v1/ws")
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, START_TIMEOUT)
            sock.close()
