"""Chain hashes on the wire, through the real server (``docs/protocol.md`` §9.2).

Pushes and history pages carry each event's ``hash`` and ``prev_hash``, and they chain;
``sync`` with ``[conv, seq, hash]`` answers the log's hash at ``seq`` and the head the user may
see (``heads``); a malformed hash is refused; a leaver's head never reveals a later event.
"""

from __future__ import annotations

import itertools
from typing import Any

from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import Admin

GENESIS_HEX = "0" * 64


def is_hex_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef")


def assert_chain(events: list[dict[str, Any]]) -> None:
    """Consecutive events link: each one's prev_hash is the hash of the one before."""
    for before, after in itertools.pairwise(events):
        assert after["seq"] == before["seq"] + 1
        assert after["prev_hash"] == before["hash"], after["seq"]


async def sync_with(client: WsClient, convs: list[list[Any]]) -> dict[str, Any]:
    return await client.ok("sync", convs=convs)


async def test_pushes_and_pages_carry_hashes_that_chain(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    conv = await a.create([bob.id], text="un")  # 1, 2
    for text in ("deux", "trois"):
        await a.send(conv, text)  # 3, 4
    await b.wait_seq(conv, 4)
    pushed = b.events(conv)
    assert [e["seq"] for e in pushed] == [1, 2, 3, 4]
    assert all(is_hex_hash(e["hash"]) and is_hex_hash(e["prev_hash"]) for e in pushed)
    assert pushed[0]["prev_hash"] == GENESIS_HEX
    assert_chain(pushed)
    assert len({e["hash"] for e in pushed}) == 4

    page = await b.ok("history", conv=conv)
    assert [(e["seq"], e["hash"], e["prev_hash"]) for e in page["events"]] == [
        (e["seq"], e["hash"], e["prev_hash"]) for e in pushed
    ]
    (entry,) = (await b.ok("list"))["conversations"]
    assert entry["head"] == pushed[-1]["hash"] == entry["last"]["hash"]
    assert entry["last_seq"] == 4


async def test_sync_with_a_held_hash_gets_the_log_s_hash_and_head(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text="un")  # 1, 2
    await a.send(conv, "deux")  # 3
    await a.wait_seq(conv, 3)
    hashes = {e["seq"]: e["hash"] for e in a.events(conv)}

    b = await admin.connect(bob, sync=False)
    reply = await sync_with(b, [[conv, 2, hashes[2]]])
    assert reply["heads"] == [
        {"conv": conv, "seq": 2, "at": hashes[2], "head_seq": 3, "head": hashes[3]}
    ]
    await b.wait_seq(conv, 3)  # resumed from seq 2: only seq 3 is sent
    assert b.seqs(conv) == [3]
    assert b.events(conv)[0]["prev_hash"] == hashes[2]

    # A seq the log does not have: "at" is null (a client holding it sees a rewound log).
    c = await admin.connect(bob, sync=False)
    reply = await sync_with(c, [[conv, 9, "ab" * 32], [conv + 1000, 1, "cd" * 32]])
    assert reply["heads"] == [
        {"conv": conv, "seq": 9, "at": None, "head_seq": 3, "head": hashes[3]},
        {"conv": conv + 1000, "seq": 1, "at": None, "head_seq": 0, "head": None},
    ]
    # Without a hash, nothing is asked and nothing is answered.
    d = await admin.connect(bob, sync=False)
    assert (await sync_with(d, [[conv, 3]]))["heads"] == []


async def test_a_malformed_hash_is_refused(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text="un")
    for bad in ("AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, 12, None, b"\x00" * 32, ""):
        b = await admin.connect(bob, sync=False)
        reply = await b.request("sync", convs=[[conv, 2, bad]])
        assert reply["op"] == "error", bad
        assert reply["code"] == "invalid_request"
        assert reply["details"]["field"] == "convs"
    b = await admin.connect(bob, sync=False)
    reply = await b.request("sync", convs=[[conv, 2, "ab" * 32, "extra"]])
    assert (reply["op"], reply["code"]) == ("error", "invalid_request")


async def test_a_leaver_s_head_is_their_leave(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    conv = await a.create([bob.id], text="un")  # 1, 2
    await b.ok("leave", client_msg_id=cmid(), conv=conv)  # 3
    await a.send(conv, "après le départ de Bob")  # 4
    await a.wait_seq(conv, 4)
    alices = {e["seq"]: e["hash"] for e in a.events(conv)}

    again = await admin.connect(bob, sync=False)
    reply = await sync_with(again, [[conv, 3, alices[3]]])
    assert reply["heads"] == [
        {"conv": conv, "seq": 3, "at": alices[3], "head_seq": 3, "head": alices[3]}
    ]
    reply = await sync_with(await admin.connect(bob, sync=False), [[conv, 4, alices[4]]])
    assert reply["heads"] == [
        {"conv": conv, "seq": 4, "at": None, "head_seq": 3, "head": alices[3]}
    ]
    (entry,) = (await again.ok("list"))["conversations"]
    assert (entry["last_seq"], entry["head"]) == (3, alices[3])
    assert alices[4] not in repr(again.pushes) and alices[4] not in repr(entry)
