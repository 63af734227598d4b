"""Memory one client can make the server hold (issue 12, item 2), against real servers.

* A client asking for 1 MiB ``history`` pages without reading them used to grow the server
  by 1 MiB per request (the queue was bounded in frames only).  Now its requests are left
  unread while its replies are unsent (back-pressure), it is closed 4005 when it does not
  read within ``CHATD_WS_STALL_SECONDS``, and the server's RSS stays bounded.
* One user can no longer open any number of connections: ``CHATD_SESSIONS_PER_USER``
  (4008 ``too_many_sessions``, its sentence naming the limit).
* A user lists their sessions (device, last seen) and revokes one or all the others; the
  revoked sockets close at once (4003).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatd.gateway.protocol import CloseCode
from tests.gateway.client import WsClient, pack
from tests.gateway.conftest import (
    LENIENT,
    PASSWORD,
    Account,
    Admin,
    ServerProcess,
    admin_on,
    start_server,
    stop_server,
)

MIB = 1024 * 1024
QUEUE_BYTES = 4 * MIB
CAP = 3
PAGES = 200  # history requests of ~1 MiB each: 200 MiB held before the fix
TEXT = "x" * 19_990  # ~20 kB messages: a history page of 100 is cut at 1 MiB
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def vm_rss(server: ServerProcess) -> int:
    """The server process's resident memory, in bytes (/proc/PID/status)."""
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def _memory_server(extra: dict[str, str]) -> Any:
    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        server = start_server(
            tmp_path_factory.mktemp("chatd-memory"),
            {**LENIENT, "CHATD_WS_QUEUE_BYTES": str(QUEUE_BYTES), **extra},
        )
        yield server
        stop_server(server)

    return fixture


patient_server = _memory_server(
    {"CHATD_WS_STALL_SECONDS": "120", "CHATD_SESSIONS_PER_USER": str(CAP)}
)
stall_server = _memory_server({"CHATD_WS_STALL_SECONDS": "2"})
# The node's total is one connection's share: two slow readers together reach it first.
crowded_server = _memory_server({"CHATD_WS_MEMORY_BYTES": str(QUEUE_BYTES)})


@pytest.fixture
async def patient(patient_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for admin in admin_on(patient_server, password_hash):
        yield admin


@pytest.fixture
async def staller(stall_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for admin in admin_on(stall_server, password_hash):
        yield admin


@pytest.fixture
async def crowded(crowded_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for admin in admin_on(crowded_server, password_hash):
        yield admin


async def big_conversation(admin: Admin) -> tuple[Account, int]:
    """A conversation whose history pages are cut at the 1 MiB reply limit."""
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text=None)
    for i in range(60):
        await a.send(conv, f"{i:05d}{TEXT}")
    page = await a.ok("history", conv=conv, limit=100)
    assert len(pack(page)) > 900 * 1024 and page["has_more"]
    await a.close()
    return alice, conv


async def flood_history(client: WsClient, conv: int) -> None:
    for rid in range(1000, 1000 + PAGES):
        await client.send_raw(pack({"op": "history", "rid": rid, "conv": conv, "limit": 100}))


def healthz(server: ServerProcess) -> dict[str, Any]:
    reply = httpx.get(f"{server.base_url}/healthz", timeout=10)
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


async def test_history_pages_asked_without_reading_end_in_4005_with_bounded_memory(
    staller: Admin,
) -> None:
    server = staller.server
    alice, conv = await big_conversation(staller)
    attacker = await staller.connect(alice, sync=False, rcvbuf=4096, max_queue=1)
    attacker.pause_reading()
    base = peak = vm_rss(server)
    logged = len(server.log())
    await flood_history(attacker, conv)
    deadline = time.monotonic() + 60
    while "closing a slow consumer" not in server.log()[logged:]:
        peak = max(peak, vm_rss(server))
        assert time.monotonic() < deadline, server.log()[logged:]
        await asyncio.sleep(0.05)  # sampling the server's memory until its log says it closed
    peak = max(peak, vm_rss(server))
    attacker.resume_reading()
    assert await attacker.wait_closed(30) == (CloseCode.SLOW_CONSUMER, "slow_consumer")
    answered = [r["rid"] for r in attacker.unmatched]
    assert answered == list(range(1000, 1000 + len(answered)))  # in order, as asked
    assert len(answered) < 10  # the rest was never read, let alone answered
    # Before the fix the server grew by ~1 MiB per request: 200 MiB here.
    assert peak - base < 48 * MIB, (base, peak)
    assert healthz(server)["queued_bytes"] < QUEUE_BYTES


async def test_a_client_writing_faster_than_it_reads_waits_and_gets_every_reply(
    patient: Admin,
) -> None:
    server = patient.server
    alice, conv = await big_conversation(patient)
    client = await patient.connect(alice, sync=False, rcvbuf=4096, max_queue=1)
    client.pause_reading()
    base = vm_rss(server)
    await flood_history(client, conv)
    deadline = time.monotonic() + 60
    while healthz(server).get("paused_sessions", 0) < 1:  # its requests now wait
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # polling the server's health, not synchronising
    health = healthz(server)
    assert health["queued_bytes"] <= QUEUE_BYTES  # at most its share, though 200 MiB is due
    assert vm_rss(server) - base < 48 * MIB
    client.resume_reading()
    await client.wait_until(lambda: len(client.unmatched) >= PAGES, timeout=120)
    assert [r["rid"] for r in client.unmatched] == list(range(1000, 1000 + PAGES))
    assert {r["op"] for r in client.unmatched} == {"ok"}
    assert client.close_code is None
    await client.flush()
    assert healthz(server)["paused_sessions"] == 0


async def test_when_the_nodes_queues_are_full_a_slow_reader_is_shed_and_the_others_go_on(
    crowded: Admin,
) -> None:
    """Two devices of one user stop reading while a conversation fills: together they reach
    the node's total before either reaches its own share, and the one holding the most is
    closed 4005 (the log says the total did it: a share overflowing logs nothing); a reader
    keeping up gets everything.  The other slow one usually survives and catches up; how
    much the kernel's buffers absorb decides whether it reaches its own share later."""
    server = crowded.server
    alice, bob, carol = await crowded.users(3)
    a = await crowded.connect(alice)
    c = await crowded.connect(carol)
    slow = [await crowded.connect(bob, rcvbuf=4096, max_queue=1) for _ in range(2)]
    conv = await a.create([bob.id, carol.id], text=None)
    for client in slow:
        client.pause_reading()
    logged = len(server.log())
    flood = 300  # 20 kB each: 6 MB for each slow reader, more than the node's 4 MiB in all
    for i in range(flood):
        await a.send(conv, f"{i:05d}{TEXT}")
    await c.wait_seq(conv, flood + 1, timeout=60)
    assert c.seqs(conv) == list(range(1, flood + 2)) and c.close_code is None
    assert "queues full" in server.log()[logged:]  # the node's total, not a share, shed one
    for client in slow:
        client.resume_reading()
    for client in slow:  # each is either shed, or catches up once it reads
        await client.wait_until(
            lambda c=client: c.close_code is not None or flood + 1 in c.seqs(conv), timeout=60
        )
    shed = [client for client in slow if client.close_code is not None]
    assert shed and {(c.close_code, c.close_reason) for c in shed} == {
        (CloseCode.SLOW_CONSUMER, "slow_consumer")
    }
    for kept in (client for client in slow if client not in shed):  # usually the other one
        assert kept.seqs(conv) == list(range(1, flood + 2))  # in order, nothing lost
    assert healthz(server)["queued_bytes"] < QUEUE_BYTES


async def _live_connections(admin: Admin, user_id: int, count: int) -> None:
    """Until the server's store counts ``count`` live connections of the user."""
    deadline = time.monotonic() + 20
    while sum((await admin.store.live_session_counts(user_id, 0)).values()) != count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # polling the server's database, not synchronising


async def test_the_connection_over_the_cap_is_refused_with_4008_naming_the_limit(
    patient: Admin,
) -> None:
    alice, bob = await patient.users(2)
    other_device = await patient.token(alice.id)
    clients = [await patient.connect(alice, sync=False) for _ in range(CAP - 1)]
    clients.append(await patient.connect(token=other_device, sync=False))
    for token in (alice.token, other_device):  # the cap is the user's, whichever token
        refused = await WsClient.open(patient.server.ws_url)
        reply = await refused.request("auth", token=token)
        assert (reply["op"], reply["code"], reply["details"]) == (
            "error",
            "too_many_sessions",
            {"max": CAP},
        )
        assert f"{CAP} sessions ouvertes" in reply["message"]  # in French, naming the limit
        assert await refused.wait_closed() == (CloseCode.TOO_MANY_SESSIONS, "too_many_sessions")
    assert (await patient.connect(bob, sync=False)).hello is not None  # others are not affected
    for client in clients:
        await client.flush()  # the admitted ones still work
        assert client.close_code is None
    await clients[0].close()
    await _live_connections(patient, alice.id, CAP - 1)
    again = await patient.connect(alice, sync=False)
    assert again.hello is not None and again.hello["limits"]["sessions_per_user"] == CAP


def http_login(server: ServerProcess, login: str, user_agent: str) -> str:
    reply = httpx.post(
        f"{server.base_url}/v1/auth/login",
        json={"login": login, "password": PASSWORD},
        headers={"User-Agent": user_agent},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["token"]
    return token


async def test_a_user_lists_their_sessions_and_revokes_one_or_all_the_others(
    patient: Admin,
) -> None:
    alice, bob = await patient.users(2)
    firefox = await patient.connect(token=http_login(patient.server, alice.login, FIREFOX))
    minted = await patient.connect(alice)
    cli = await patient.connect(token=http_login(patient.server, alice.login, "chatd-cli"))

    sessions = (await firefox.ok("sessions"))["sessions"]
    assert len(sessions) == 3
    assert sorted(s["device"] or "" for s in sessions) == ["", "Firefox", "chatd-cli"]
    (mine,) = [s for s in sessions if s["current"]]
    assert mine["device"] == "Firefox" and mine["connections"] == 1
    assert all(len(s["id"]) == 8 and s["last_seen_at"] >= s["created_at"] for s in sessions)
    assert "token" not in str(sessions)
    (minted_id,) = [s["id"] for s in sessions if s["device"] is None]

    # Bob cannot see nor end Alice's sessions.
    b = await patient.connect(bob)
    assert await b.error("revoke_session", session=mine["id"]) == "session_not_found"
    assert await firefox.error("revoke_session", session="zz") == "invalid_request"

    assert (await firefox.ok("revoke_session", session=minted_id))["revoked"] == 1
    assert await minted.wait_closed() == (CloseCode.LOGGED_OUT, "logged_out")  # at once
    assert await firefox.error("revoke_session", session=minted_id) == "session_not_found"

    assert (await firefox.ok("revoke_other_sessions"))["revoked"] == 1
    assert await cli.wait_closed() == (CloseCode.LOGGED_OUT, "logged_out")
    left = (await firefox.ok("sessions"))["sessions"]
    assert [(s["id"], s["current"]) for s in left] == [(mine["id"], True)]
