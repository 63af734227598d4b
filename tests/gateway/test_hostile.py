"""Malformed and hostile frames, limits and slow consumers, against real servers.

Every bad input gets a documented error frame or close code; the server never crashes (its
log is checked for internal errors when it stops) and never half-applies a change.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
import websockets

from chatd.gateway.protocol import CloseCode
from tests.gateway.client import WsClient, cmid, pack
from tests.gateway.conftest import Admin, start_server, stop_server

HOSTILE: list[tuple[bytes, int | None, str]] = [
    (b"", None, "malformed_frame"),
    (b"\xc1\xc1\xc1", None, "malformed_frame"),
    (b"\x91" * 5000, None, "malformed_frame"),  # nested past the unpacker's depth
    (pack([1, 2, 3]), None, "malformed_frame"),
    (pack({"op": "ping", "rid": 1}) + b"\x00", None, "malformed_frame"),  # trailing bytes
    (b"\x81\xa2op\xa3\xff\xfe\xfd", None, "malformed_frame"),  # invalid UTF-8
    (b"\x81\x01\x02", None, "malformed_frame"),  # integer key
    (pack({"op": "ping"}), None, "invalid_request"),  # no rid
    (pack({"op": "ping", "rid": True}), None, "invalid_request"),
    (pack({"op": "ping", "rid": -1}), None, "invalid_request"),
    (pack({"op": "ping", "rid": 2**64 - 1}), None, "invalid_request"),
    (pack({"op": "ping", "rid": 1.5}), None, "invalid_request"),
    (pack({"rid": 7}), 7, "invalid_request"),
    (pack({"op": 3, "rid": 7}), 7, "invalid_request"),
    (pack({"op": "drop_tables", "rid": 7}), 7, "unknown_op"),
    (pack({"op": "ping", "rid": 7, "extra": 1}), 7, "invalid_request"),
    (
        pack({"op": "send", "rid": 7, "conv": "1", "text": "x", "client_msg_id": "a"}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "send", "rid": 7, "conv": 2**63, "text": "x", "client_msg_id": "a"}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "send", "rid": 7, "conv": -5, "text": "x", "client_msg_id": "a"}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "send", "rid": 7, "conv": 1, "text": b"bytes", "client_msg_id": "a"}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "send", "rid": 7, "conv": 1, "text": "x" * 20_001, "client_msg_id": "a"}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "send", "rid": 7, "conv": 1, "text": "x", "client_msg_id": "a" * 65}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "send", "rid": 7, "conv": 1, "text": "x", "client_msg_id": "a\n"}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "send", "rid": 7, "conv": 1, "text": "x", "client_msg_id": "a", "tag": "!"}),
        7,
        "invalid_request",
    ),
    (
        pack(
            {
                "op": "create",
                "rid": 7,
                "members": list(range(1, 600)),
                "name": "n",
                "client_msg_id": "a",
            }
        ),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "create", "rid": 7, "members": [1, [2]], "name": "n", "client_msg_id": "a"}),
        7,
        "invalid_request",
    ),
    (
        pack({"op": "create", "rid": 7, "members": {"1": 1}, "name": "n", "client_msg_id": "a"}),
        7,
        "invalid_request",
    ),
    (pack({"op": "history", "rid": 7, "conv": 1, "before": 5, "after": 2}), 7, "invalid_request"),
    (pack({"op": "history", "rid": 7, "conv": 1, "limit": 10**6}), 7, "invalid_request"),
    (pack({"op": "sync", "rid": 7, "convs": [[1, 2], [1, 3]]}), 7, "invalid_request"),
    (pack({"op": "sync", "rid": 7, "convs": [[1, 2, 3]]}), 7, "invalid_request"),
    (pack({"op": "sync", "rid": 7, "convs": [[1, -2]]}), 7, "invalid_request"),
    (pack({"op": "read", "rid": 7, "conv": 1, "seq": None}), 7, "invalid_request"),
    (pack({"op": "users", "rid": 7, "ids": []}), 7, "invalid_request"),
    (b"\x82\xa2op\xa4ping\xa3rid\xd6\xff\x00\x00\x00\x01", None, "invalid_request"),  # ext type
]


async def test_hostile_frames_get_error_frames_and_the_session_survives(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id])
    for frame, rid, code in HOSTILE:
        before = len(a.unmatched)
        if rid is None:
            await a.send_raw(frame)
            await a.wait_until(lambda n=before: len(a.unmatched) > n)  # type: ignore[misc]
            reply: dict[str, Any] = a.unmatched[-1]
        else:
            waiter = asyncio.get_running_loop().create_future()
            a._replies[rid] = waiter
            await a.send_raw(frame)
            reply = await asyncio.wait_for(waiter, 10)
        assert reply["op"] == "error", (frame[:40], reply)
        assert (reply["rid"], reply["code"]) == (rid, code), (frame[:40], reply)
        assert isinstance(reply["message"], str) and reply["message"]
    await a.ok("ping")
    await a.wait_seq(conv, 2)
    await a.flush()
    assert a.seqs(conv) == [1, 2]  # nothing was appended by any of it
    (entry,) = (await a.ok("list"))["conversations"]
    assert entry["last_seq"] == 2


async def test_invalid_operation_is_never_half_applied(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    # A creation naming one real and one unknown user: refused as a whole.
    code = await a.error(
        "create", client_msg_id=cmid(), members=[bob.id, 10**9], name="n", text="t"
    )
    assert code == "user_not_found"
    assert (await a.ok("list"))["conversations"] == []
    b = await admin.connect(bob)
    await b.flush()
    assert b.events() == []


async def test_frame_over_64_kib_closes_with_1009(admin: Admin) -> None:
    account = await admin.user()
    client = await admin.connect(account)
    frame = pack({"op": "send", "rid": 1, "conv": 1, "client_msg_id": "a", "text": "x" * 70_000})
    await client.send_raw(frame)
    code, _ = await client.wait_closed()
    assert code == CloseCode.FRAME_TOO_LARGE == 1009


async def test_text_frames_close_with_1003(admin: Admin) -> None:
    client = await admin.connect(await admin.user())
    await client.send_raw('{"op": "ping", "rid": 1}')
    assert await client.wait_closed() == (CloseCode.UNSUPPORTED_DATA, "unsupported_data")


async def test_rate_limit_answers_then_disconnects_a_hammering_client(
    strict_admin: Admin,
) -> None:
    client = await strict_admin.connect(await strict_admin.user(), sync=False)
    # Burst 10 at 5/s: 15 pipelined pings get about 10 answers and the rest refusals.
    for rid in range(100, 115):
        await client.send_raw(pack({"op": "ping", "rid": rid}))
    await client.wait_until(lambda: len(client.unmatched) >= 15)
    codes = [r.get("code", "ok") for r in client.unmatched]
    assert 10 <= codes.count("ok") <= 12 and codes.count("rate_limited") >= 3
    assert codes.count("ok") + codes.count("rate_limited") == 15
    assert {r["rid"] for r in client.unmatched} == set(range(100, 115))
    for rid in range(200, 240):  # keeps hammering without slowing down
        try:
            await client.send_raw(pack({"op": "ping", "rid": rid}))
        except Exception:
            break
    assert await client.wait_closed() == (CloseCode.RATE_LIMITED, "rate_limited")


async def test_a_burst_gets_every_reply_and_a_flood_gets_them_before_4007(
    tmp_path: Path, password_hash: str
) -> None:
    """With the default limits (20/s, bursts of 100), as docs/protocol.md §12 describes them:
    a burst of 200 requests sent at once is answered in full — ``ok`` or ``rate_limited`` for
    every rid, no close; a flood that goes on (more refusals in a row than the burst) is
    closed with 4007, but only after every request read before the close got its answer,
    in order.  Before the fix the close emptied the queue: 13–35 replies, then 4007."""
    server = start_server(tmp_path, {"CHATD_AUTH_TIMEOUT_SECONDS": "5"})
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    try:
        client = await admin.connect(await admin.user(), sync=False)
        for rid in range(100, 300):
            await client.send_raw(pack({"op": "ping", "rid": rid}))
        await client.wait_until(lambda: len(client.unmatched) >= 200)
        assert [r["rid"] for r in client.unmatched] == list(range(100, 300))
        codes = [r.get("code", "ok") for r in client.unmatched]
        assert codes.count("ok") >= 100 and set(codes) <= {"ok", "rate_limited"}

        assert client.close_code is None  # answered, not closed

        with contextlib.suppress(websockets.ConnectionClosed):
            for rid in range(1000, 6000):  # keeps hammering without slowing down
                await client.send_raw(pack({"op": "ping", "rid": rid}))
        assert await client.wait_closed() == (CloseCode.RATE_LIMITED, "rate_limited")
        rids = [r["rid"] for r in client.unmatched[200:]]
        assert rids == list(range(1000, 1000 + len(rids)))  # every one read, answered in order
        # Refusals in a row count across both volleys (nothing was accepted in between).
        codes = [r.get("code", "ok") for r in client.unmatched]
        refused_in_a_row = len(codes) - max(i for i, c in enumerate(["ok", *codes]) if c == "ok")
        assert refused_in_a_row == 101, codes  # the burst plus the one that ended it
    finally:
        await admin.close()
        stop_server(server)


async def test_idle_connections_are_closed(strict_admin: Admin) -> None:
    client = await strict_admin.connect(await strict_admin.user(), sync=False)
    await client.ok("ping")
    assert await client.wait_closed(6) == (CloseCode.IDLE_TIMEOUT, "idle_timeout")


async def test_slow_consumer_is_closed_and_resumes_without_gap(tiny_admin: Admin) -> None:
    alice, bob = await tiny_admin.users(2)
    a = await tiny_admin.connect(alice)
    # bob stops reading: a tiny receive buffer, a one-frame client queue, no reads.  The
    # server's writes then block, its 4-frame queue overflows, and it must close rather than
    # buffer without bound.
    slow = await tiny_admin.connect(bob, rcvbuf=4096, max_queue=1)
    conv = await a.create([bob.id], text=None)
    slow.pause_reading()
    flood = 400  # loopback kernel buffers absorb ~3 MB before the server blocks
    for i in range(flood):
        await a.send(conv, f"{i:05d}" + "x" * 19_990)  # ~20 kB each, 8 MB in all
    sent = flood + 1
    slow.resume_reading()
    code, reason = await slow.wait_closed(20)
    assert (code, reason) == (CloseCode.SLOW_CONSUMER, "slow_consumer")
    got = slow.seqs(conv)
    assert got == list(range(1, len(got) + 1))  # what it got was in order, without gap
    assert len(got) < sent  # and it did not get everything: the server let go
    # It reconnects and resumes from what it holds.  400 messages is more than the
    # 200-message window, so: the archived marker, then exactly the window, in order.
    back = await tiny_admin.connect(bob, sync=False, max_queue=1000)
    await back.sync({conv: got[-1] if got else 0})
    await back.wait_seq(conv, sent)
    window_start = sent - 200 + 1
    assert back.pushes[0] == {"op": "archived", "conv": conv, "window_start": window_start}
    assert back.seqs(conv) == list(range(window_start, sent + 1))


@pytest.mark.parametrize("op", ["send", "rename", "add", "leave", "create"])
async def test_mutations_require_a_client_msg_id(admin: Admin, op: str) -> None:
    a = await admin.connect(await admin.user())
    fields: dict[str, Any] = {"conv": 1, "text": "t", "name": "n", "user": 2, "members": [2]}
    allowed = {
        "send": {"conv", "text"},
        "rename": {"conv", "name"},
        "add": {"conv", "user"},
        "leave": {"conv"},
        "create": {"members", "name"},
    }[op]
    reply = await a.request(op, **{k: v for k, v in fields.items() if k in allowed})
    assert (reply["op"], reply["code"], reply["details"]["field"]) == (
        "error",
        "invalid_request",
        "client_msg_id",
    )


def test_hostile_table_is_well_formed() -> None:
    for frame, _, _ in HOSTILE:
        assert isinstance(frame, bytes)
    assert msgpack.unpackb(pack({"op": "ping", "rid": 1})) == {"op": "ping", "rid": 1}


async def test_client_helper_roundtrip(admin: Admin) -> None:
    client = await WsClient.open(admin.server.ws_url, (await admin.user()).token)
    assert (await client.ok("ping"))["op"] == "ok"
    await client.close()


async def test_clients_vanishing_at_any_point_leave_the_server_healthy(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id])
    for step in range(5):
        client = await WsClient.open(admin.server.ws_url)
        if step >= 1:
            await client.send_raw(pack({"op": "auth", "rid": 1, "token": bob.token}))
        if step >= 2:
            await client.wait_until(lambda c=client: c.hello is not None or bool(c.unmatched))
            await client.send_raw(pack({"op": "sync", "rid": 2, "convs": []}))
        if step >= 3:
            await client.send_raw(
                pack({"op": "send", "rid": 3, "conv": conv, "text": "bye", "client_msg_id": "v"})
            )
        if step >= 4:
            await client.send_raw(b"\xc1")
        client.ws.transport.abort()  # no close frame, no FIN handshake
        await asyncio.gather(client._reader, return_exceptions=True)
    # The send of step 3 or 4 was committed once (same client_msg_id) or not at all.
    retried = await admin.connect(bob)
    reply = await retried.ok("send", conv=conv, text="bye", client_msg_id="v")
    await a.wait_seq(conv, reply["last_seq"])
    await a.flush()
    assert a.seqs(conv) == [1, 2, 3]
    assert [e["text"] for e in a.events(conv) if e["kind"] == "message"][-1] == "bye"
