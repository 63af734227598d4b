"""The server's edge under hostile sockets (issue 12, item 4), against real servers.

Slow-loris heads, silent sockets, stalled bodies, and enough idle sockets to fill the
connection cap: each is closed or cut within its deadline, and ``/healthz`` and a login still
succeed while the hostile sockets are open.  Waits are on the sockets themselves (their end of
file, a response) with generous bounds; the only ``asyncio.sleep`` is an attacker's pacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.gateway.conftest import (
    PASSWORD,
    Admin,
    ServerProcess,
    admin_on,
    start_server,
    stop_server,
)

BOUND = 30.0  # seconds: generous, for a busy 2-CPU machine
HEAD_SECONDS, IDLE_SECONDS, STALL_SECONDS = 3, 1, 2
CAP = 8

EDGES = {
    "CHATD_HTTP_HEAD_SECONDS": str(HEAD_SECONDS),
    "CHATD_HTTP_IDLE_SECONDS": str(IDLE_SECONDS),
    "CHATD_HTTP_BODY_STALL_SECONDS": str(STALL_SECONDS),
}
# Deadlines far away: what keeps this server reachable is the cap's eviction alone.
CAPPED = {
    "CHATD_MAX_CONNECTIONS": str(CAP),
    "CHATD_HTTP_HEAD_SECONDS": "120",
    "CHATD_HTTP_IDLE_SECONDS": "120",
    "CHATD_WS_RATE": "100000",
    "CHATD_WS_BURST": "100000",
}


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("edges"), EDGES)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("capped"), CAPPED)
    yield server
    stop_server(server)


@pytest.fixture
async def edge_admin(edge_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for a in admin_on(edge_server, password_hash):
        yield a


@pytest.fixture
async def capped_admin(capped_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for a in admin_on(capped_server, password_hash):
        yield a


Socket = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(server: ServerProcess) -> Socket:
    url = urlsplit(server.base_url)
    assert url.hostname is not None and url.port is not None
    return await asyncio.open_connection(url.hostname, url.port)


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    try:
        return await asyncio.wait_for(reader.read(), BOUND)
    except ConnectionResetError:
        return b""


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """The slow-loris attack: one byte of a never-ending head every 200 ms."""
    with contextlib.suppress(ConnectionError):
        for byte in data * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)  # the attacker's pace, not a synchronisation


async def trickled_for(server: ServerProcess, head: bytes = b"") -> float:
    """Seconds a connection trickling a head stayed open."""
    reader, writer = await connect(server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(head)
    attack = asyncio.create_task(trickle(writer, b"X-Padding: a"))
    try:
        assert await until_closed(reader) == b""  # closed without an answer
        return loop.time() - started
    finally:
        attack.cancel()
        writer.close()


def response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


# ----------------------------------------------------------------------------- deadlines


async def test_trickled_heads_are_closed_at_the_head_deadline(edge_server: ServerProcess) -> None:
    started = [
        trickled_for(edge_server, b"GET /healthz HTTP/1.1\r\nHost: chatd\r\n") for _ in range(40)
    ]
    lasted = await asyncio.gather(*started)
    # Each byte came well within the idle deadline: it is the head deadline that closed them.
    assert all(IDLE_SECONDS + 0.5 < seconds < HEAD_SECONDS + BOUND for seconds in lasted), lasted


async def test_silent_connections_are_closed_at_the_idle_deadline(
    edge_server: ServerProcess,
) -> None:
    sockets = [await connect(edge_server) for _ in range(20)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(until_closed(reader) for reader, _ in sockets))
    assert answers == [b""] * 20
    assert loop.time() - started < IDLE_SECONDS + BOUND
    for _, writer in sockets:
        writer.close()


async def test_a_kept_alive_connection_cannot_trickle_its_next_head(
    edge_server: ServerProcess,
) -> None:
    reader, writer = await connect(edge_server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: chatd\r\n\r\n")
    status_line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    assert status_line.startswith(b"HTTP/1.1 200")
    length = int(response(status_line)[1]["content-length"])
    await asyncio.wait_for(reader.readexactly(length), BOUND)
    loop = asyncio.get_running_loop()
    started = loop.time()
    attack = asyncio.create_task(trickle(writer, b"GET /healthz HTTP/1.1\r\nX-Padding: a"))
    try:
        assert await until_closed(reader) == b""
    finally:
        attack.cancel()
        writer.close()
    assert IDLE_SECONDS + 0.5 < loop.time() - started < HEAD_SECONDS + BOUND


async def _stalled(server: ServerProcess, head: str, sent: bytes) -> tuple[int, dict[str, str]]:
    reader, writer = await connect(server)
    writer.write(head.encode("latin-1") + sent)  # then nothing more: the body stalls
    try:
        status, headers, body = response(await until_closed(reader))
    finally:
        writer.close()
    return status, {**headers, **json.loads(body)}


async def test_a_stalled_upload_is_cut_with_a_clear_error(edge_admin: Admin) -> None:
    account = await edge_admin.user()
    head = (
        "POST /v1/attachments HTTP/1.1\r\nHost: chatd\r\n"
        f"Authorization: Bearer {account.token}\r\nX-File-Name: compte-rendu.pdf\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 200000\r\n"
        "Accept-Language: en\r\n\r\n"
    )
    status, answer = await _stalled(edge_admin.server, head, b"%PDF-1.7\n" + b"0" * 4000)
    assert status == 408
    assert answer["code"] == "request_timeout"
    assert answer["connection"] == "close"
    assert f"stalled for {STALL_SECONDS} seconds" in answer["message"]
    spool = edge_admin.server.blobs.spool_path().parent
    assert not list(spool.glob("*")), "the partial upload was not removed"


async def test_a_stalled_login_body_is_cut_in_french(edge_server: ServerProcess) -> None:
    head = (
        "POST /v1/auth/login HTTP/1.1\r\nHost: chatd\r\nContent-Type: application/json\r\n"
        "Content-Length: 80\r\n\r\n"
    )
    status, answer = await _stalled(edge_server, head, b'{"login": "a.martin", ')
    assert status == 408
    assert answer["code"] == "request_timeout"
    assert f"bloquée {STALL_SECONDS}\u00a0secondes" in answer["message"]


# ----------------------------------------------------------------------------- the cap


async def test_healthz_and_login_succeed_while_hostile_sockets_fill_the_cap(
    capped_admin: Admin,
) -> None:
    server = capped_admin.server
    account = await capped_admin.user()
    hostile: list[Socket] = []
    for number in range(40):  # five times the cap: 20 silent, 20 with most of a head
        reader, writer = await connect(server)
        if number % 2:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: chatd\r\n")
            await writer.drain()
        hostile.append((reader, writer))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=BOUND) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200, health.text
            login = await client.post(
                "/v1/auth/login", json={"login": account.login, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            assert login.json()["token"]
        # The oldest hostile sockets made room, each closed without an answer...
        evicted = hostile[: 40 - CAP]
        assert await asyncio.gather(*(until_closed(r) for r, _ in evicted)) == [b""] * len(evicted)
        # ... while the youngest were still open: the last one finishes its head and is served.
        reader, writer = hostile[-1]
        writer.write(b"\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        for _, writer in hostile:
            writer.close()


async def test_websocket_sessions_count_toward_the_cap(capped_admin: Admin) -> None:
    server = capped_admin.server
    accounts = await capped_admin.users(CAP)
    sessions = [await capped_admin.connect(account) for account in accounts]
    # Every slot holds a live session, none of them idle: a new connection is refused.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=BOUND) as client:
        refused = await client.get("/healthz")
    assert refused.status_code == 503
    assert refused.json()["code"] == "unavailable"
    assert "trop de connexions" in refused.json()["message"]
    assert all(session.close_code is None for session in sessions)
    await sessions[0].close()
    # The session's slot comes back once the server has seen it close.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while True:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=BOUND) as client:
            if (await client.get("/healthz")).status_code == 200:
                break
        assert loop.time() < deadline, "the closed session's slot never came back"


# ----------------------------------------------------------------------------- descriptors


def test_the_open_file_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    if low == hard or hard == resource.RLIM_INFINITY:
        pytest.skip("the hard open-file limit is too low to lower the soft one under it")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    server = start_server(tmp_path, {}, preexec_fn=lower)
    try:
        limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        now_soft, now_hard = line.split()[3:5]
        assert now_hard == now_soft, line
        assert int(now_soft) > low
    finally:
        stop_server(server)
