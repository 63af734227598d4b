"""Real servers for the gateway tests: ``python -m chatd serve`` subprocesses on 127.0.0.1.

Each server configuration is started once per test session on a free port (``CHATD_PORT=0``;
the server prints ``chatd listening on …``) with its own temporary ``CHATD_DATA_DIR``, and
stopped with SIGTERM at the end; its log must then hold no internal error.  Tests create
their own users (unique logins) directly in the server's database through a second store on
the same files — SQLite allows it — and log them in over HTTP or mint a token the same way.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatd.attachments.blobstore import BlobStore
from chatd.core.clock import wall_clock_ms
from chatd.core.records import NewUser, SessionToken, UserProfile
from chatd.crypto.keyring import load_key_file
from chatd.crypto.passwords import hash_password
from chatd.services.attachments import AttachmentService
from chatd.services.auth import new_token, token_digest
from chatd.store.contract import Store
from chatd.store.sqlite import SqliteStore
from tests.conftest import chatd_env
from tests.gateway.client import WsClient

PASSWORD = "correct horse battery staple"
TERMS = "test-terms-1"
TERMS_URL = "https://chatd.example/cgu-test-terms-1.html"
ORIGIN = "https://app.chatd.example"
HOUR_MS = 3_600_000

# The suite's logins all come from 127.0.0.1: only the per-login budget is the default one
# (tests/gateway/test_login_throttle.py tests the others on servers of its own).
ONE_ADDRESS = {"CHATD_LOGIN_ADDRESS_LIMIT": "1000000", "CHATD_LOGIN_GLOBAL_LIMIT": "10000000"}
LENIENT = {
    **ONE_ADDRESS,
    "CHATD_WS_RATE": "100000",
    "CHATD_WS_BURST": "100000",
    "CHATD_AUTH_TIMEOUT_SECONDS": "1",
}
STRICT = {
    **ONE_ADDRESS,
    "CHATD_WS_RATE": "5",
    "CHATD_WS_BURST": "10",
    "CHATD_WS_IDLE_SECONDS": "2",
    "CHATD_AUTH_TIMEOUT_SECONDS": "1",
}
TINY_QUEUE = {
    **ONE_ADDRESS,
    "CHATD_WS_RATE": "100000",
    "CHATD_WS_BURST": "100000",
    "CHATD_WS_QUEUE": "4",
}


@dataclass
class ServerProcess:
    base_url: str
    ws_url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def store(self) -> SqliteStore:
        return SqliteStore(
            self.data_dir / "chatd.sqlite3", load_key_file(self.data_dir / "master.keys")
        )

    @property
    def blobs(self) -> BlobStore:
        """The server's attachment files (the attachment service's, not the store's)."""
        return BlobStore(self.data_dir / "attachments")


def start_server(
    tmp: Path,
    extra: dict[str, str],
    scheme: str = "http",
    preexec_fn: Callable[[], None] | None = None,
    argv: tuple[str, ...] = (),
) -> ServerProcess:
    data_dir = tmp / "var"
    env = chatd_env(
        data_dir,
        {
            "CHATD_PORT": "0",
            "CHATD_ALLOWED_ORIGINS": ORIGIN,
            "CHATD_TERMS_VERSION": TERMS,
            "CHATD_TERMS_URL": TERMS_URL,
            "CHATD_SQLITE_SYNCHRONOUS": "NORMAL",  # durability is the store suite's business
            **extra,
        },
    )
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", "serve", *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
            preexec_fn=preexec_fn,
        )
    deadline = time.monotonic() + 30
    url = None
    while url is None:
        match = re.search(
            rf"chatd listening on ({scheme}://\S+)", log_path.read_text(errors="replace")
        )
        if match:
            url = match.group(1)
        elif proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"chatd serve did not start:\n{log_path.read_text()}")
        else:
            time.sleep(0.05)  # polling a child process's log, not synchronising tests
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2, verify=False).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"chatd serve never became healthy:\n{log_path.read_text()}")
        time.sleep(0.05)
    ws_url = url.replace("http", "ws", 1) + "/v1/ws"
    return ServerProcess(url, ws_url, data_dir, log_path, proc)


def stop_server(server: ServerProcess) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        raise AssertionError(f"chatd serve did not stop on SIGTERM:\n{server.log()}") from None
    log = server.log()
    assert code == 0, f"chatd serve exited with {code}:\n{log}"
    assert "internal error" not in log and "Traceback" not in log, log


def _server_fixture(extra: dict[str, str]) -> Any:
    @pytest.fixture(scope="session")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        server = start_server(tmp_path_factory.mktemp("chatd"), extra)
        yield server
        stop_server(server)

    return fixture


server = _server_fixture(LENIENT)
strict_server = _server_fixture(STRICT)
tiny_queue_server = _server_fixture(TINY_QUEUE)


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


# ----------------------------------------------------------------------------- accounts

_logins = itertools.count(1)
_session_tag = uuid.uuid4().hex[:6]


@dataclass
class Account:
    id: int
    login: str
    token: str


@dataclass
class Admin:
    """Creates users and tokens in a server's database, and opens clients on it."""

    server: ServerProcess
    store: Store  # the server's database, through its own store (any backend)
    password_hash: str
    clients: list[WsClient] = field(default_factory=list)

    @property
    def files(self) -> AttachmentService:
        """An attachment service on the server's files and this second store (the server's
        own sweeps every CHATD_ATTACHMENT_SWEEP_SECONDS; a test sweeps itself with this)."""
        return AttachmentService(
            self.store,
            blobs=self.server.blobs,
            max_bytes=1024 * 1024,
            ttl_seconds=86_400,
            sweep_seconds=0,
        )

    async def user(self, *, terms: bool = True, first_name: str = "Alice") -> Account:
        login = f"u{_session_tag}{next(_logins)}"
        user = await self.store.create_user(
            NewUser(
                login,
                self.password_hash,
                UserProfile(first_name, "Test", "Infirmière", "CH Test", f"{login}@example.org"),
            )
        )
        if terms:
            await self.store.set_terms_accepted(user.id, TERMS)
        return Account(user.id, login, await self.token(user.id))

    async def users(self, count: int) -> list[Account]:
        return [await self.user() for _ in range(count)]

    async def token(self, user_id: int, *, expires_in_ms: int = 8 * HOUR_MS) -> str:
        # Minted and digested by the auth service's own functions, as a login does.
        token = new_token()
        now = wall_clock_ms()
        await self.store.create_session_token(
            SessionToken(token_digest(token), user_id, now - 1000, now + expires_in_ms)
        )
        return token

    async def connect(
        self,
        account: Account | None = None,
        *,
        token: str | None = None,
        sync: bool = True,
        **options: Any,
    ) -> WsClient:
        client = await WsClient.open(
            self.server.ws_url, token or (account.token if account else None), **options
        )
        self.clients.append(client)
        if sync and client.hello is not None and client.hello["terms_accepted"]:
            await client.sync()
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.store.close()


async def admin_on(server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    """An :class:`Admin` of ``server``, closed afterwards: the body of every admin fixture."""
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    try:
        yield admin
    finally:
        await admin.close()


@pytest.fixture
async def admin(server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for a in admin_on(server, password_hash):
        yield a


@pytest.fixture
async def strict_admin(strict_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for a in admin_on(strict_server, password_hash):
        yield a


@pytest.fixture
async def tiny_admin(tiny_queue_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for a in admin_on(tiny_queue_server, password_hash):
        yield a
