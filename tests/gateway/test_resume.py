"""Resume after a disconnect, and the 200-message window, over real sockets."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.gateway.client import cmid
from tests.gateway.conftest import Admin


async def test_resume_after_a_disconnect_has_no_gap_and_no_duplicate(admin: Admin) -> None:
    alice, bob, carol = await admin.users(3)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    conv = await a.create([bob.id, carol.id])  # 1, 2
    other = await a.create([bob.id], name="other")  # 1, 2
    await b.wait_seq(other, 2)
    await b.flush()
    held = {conv: b.seqs(conv)[-1], other: b.seqs(other)[-1]}
    await b.close()

    c = await admin.connect(carol)
    for i in range(5):
        await a.send(conv, f"while away {i}")  # 3..7
        await c.send(conv, f"carol {i}")  # 8..12 interleaved
    await a.send(other, "other while away")  # other: 3
    added = await a.create([carol.id], name="new while away")  # bob not in it

    back = await admin.connect(bob, sync=False)
    live_during_sync = asyncio.create_task(a.send(conv, "during resume"))
    reply = await back.sync(held)
    await live_during_sync
    await back.wait_seq(conv, 13)
    await back.flush()
    assert back.seqs(conv) == list(range(3, 14))  # exactly the missed ones, then live
    assert back.seqs(other) == [3]
    assert back.events(added) == []
    assert not any(p["op"] == "archived" for p in back.pushes)
    assert dict(map(tuple, reply["convs"]))[other] == 3
    assert reply["unknown"] == [] and reply["expired"] == []


async def test_sync_of_a_new_device_sends_everything_visible(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text="first")
    await a.send(conv, "second")
    fresh = await admin.connect(bob, sync=False)
    await fresh.flush()
    assert fresh.events() == []  # no live push before the first sync
    reply = await fresh.sync({conv + 1000: 5})  # a conversation it never was in
    assert fresh.seqs(conv) == [1, 2, 3]
    assert reply["unknown"] == [conv + 1000]
    await a.send(conv, "third")
    await fresh.wait_seq(conv, 4)
    assert fresh.seqs(conv) == [1, 2, 3, 4]


async def test_a_client_ahead_of_the_server_is_not_stuck(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id])
    b = await admin.connect(bob, sync=False)
    reply = await b.sync({conv: 999})  # a confused client
    assert dict(map(tuple, reply["convs"]))[conv] == 2  # the server says where it really is
    await a.send(conv, "next")
    await b.wait_seq(conv, 3)
    assert b.seqs(conv) == [3]


async def test_250_messages_fresh_client_gets_the_latest_200_and_archived(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text="message 0")  # 1 created, 2 message 0
    await a.ok("rename", client_msg_id=cmid(), conv=conv, name="Renamed early")  # 3
    for i in range(1, 250):
        await a.send(conv, f"message {i}")  # 4 .. 252
    last = 252

    fresh = await admin.connect(bob, sync=False)
    await fresh.sync({})
    await fresh.flush()
    conv_frames = [p for p in fresh.pushes if p.get("conv") == conv]
    assert conv_frames[0]["op"] == "archived"  # the marker comes first…
    window_start = conv_frames[0]["window_start"]
    events = conv_frames[1:]
    assert [e["op"] for e in events] == ["event"] * len(events)
    texts = [e["text"] for e in events if e["kind"] == "message"]
    assert texts == [f"message {i}" for i in range(50, 250)]  # exactly the latest 200
    assert [e["seq"] for e in events] == list(range(window_start, last + 1))
    assert window_start == 53

    # History pages back to the window's start, then says "archived", never a silent cut.
    pages, before, archived = [], None, False
    while not archived:
        fields = {"conv": conv, "limit": 100} | ({} if before is None else {"before": before})
        page = await fresh.ok("history", **fields)
        pages.append(page)
        archived = page["archived"]
        if page["events"]:
            before = page["events"][0]["seq"]
        assert page["has_more"] != archived or not page["events"]
    seqs = [e["seq"] for page in reversed(pages) for e in page["events"]]
    assert seqs == list(range(window_start, last + 1))
    assert (await fresh.ok("history", conv=conv, before=window_start))["events"] == []
    behind = await fresh.ok("history", conv=conv, after=10, limit=5)
    assert behind["archived"] is True  # asked for archived events: told so
    assert [e["seq"] for e in behind["events"]] == list(range(window_start, window_start + 5))

    # A client holding an old position is behind the window: archived marker, then the window.
    old = await admin.connect(bob, sync=False)
    await old.sync({conv: 10})
    conv_frames = [p for p in old.pushes if p.get("conv") == conv]
    assert conv_frames[0] == {"op": "archived", "conv": conv, "window_start": window_start}
    assert [e["seq"] for e in conv_frames[1:]] == list(range(window_start, last + 1))
    (entry,) = (await old.ok("list"))["conversations"]
    assert entry["unread"] == 200  # capped at the window: older ones cannot be read


async def test_hello_announces_the_epoch_and_sync_in_it_trusts_positions(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text="first")  # 1, 2
    b = await admin.connect(bob, sync=False)
    assert b.hello is not None and a.hello is not None
    epoch = b.hello["epoch"]
    assert re.fullmatch(r"[0-9a-f]{32}", epoch) and a.hello["epoch"] == epoch
    reply = await b.sync({conv: 2}, epoch=epoch)
    assert reply["epoch"] == epoch and reply["epoch_changed"] is False
    await a.send(conv, "next")
    await b.wait_seq(conv, 3)
    assert b.seqs(conv) == [3]  # nothing resent: the positions were trusted


async def test_seqs_of_another_epoch_are_ignored_and_the_window_resent(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text="first")  # 1, 2
    b = await admin.connect(bob, sync=False)
    assert b.hello is not None
    other = "0" * 32 if b.hello["epoch"] != "0" * 32 else "1" * 32
    # Seqs held from a history this database never had (a restore): 999 must not be trusted.
    reply = await b.sync({conv: 999, conv + 1000: 4}, epoch=other)
    assert reply["epoch"] == b.hello["epoch"] and reply["epoch_changed"] is True
    assert b.seqs(conv) == [1, 2]  # the whole window again
    assert dict(map(tuple, reply["convs"]))[conv] == 2
    assert reply["unknown"] == []  # positions of another history name nothing here
    await a.send(conv, "after the resync")
    await b.wait_seq(conv, 3)
    assert b.seqs(conv) == [1, 2, 3]


@pytest.mark.parametrize("epoch", ["abc", "G" * 32, "A" * 32, 7, "0" * 33])
async def test_a_malformed_epoch_is_refused_in_french(admin: Admin, epoch: object) -> None:
    (alice,) = await admin.users(1)
    a = await admin.connect(alice, sync=False)
    error = await a.request("sync", convs=[], epoch=epoch)
    assert error["op"] == "error" and error["code"] == "invalid_request"
    assert error["details"]["field"] == "epoch"
    assert "32 chiffres hexadécimaux" in error["message"]
