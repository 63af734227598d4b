"""The leaving rules on every read path, over real sockets.

Modelled on Matrix SyTest's ``tests/30rooms/05leave.pl`` ("A departed room is still included
in …", "Newly left rooms appear in the leave section", "Can get rooms/{roomId}/messages for a
departed room", "Can't get … after leave"): a leaver keeps read access to what they could see
up to and including their own ``left`` event, and nothing after it reaches them on any path —
live push, history, resume, window, list preview, name, members, unread count.  Re-added, they
see from their new join on, and nothing of what happened while they were away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import Account, Admin

SECRET = "after bob left"


@dataclass
class Scene:
    alice: Account
    bob: Account
    carol: Account
    a: WsClient
    b: WsClient
    b2: WsClient  # a second device of the leaver
    c: WsClient
    conv: int


async def leave_scenario(admin: Admin) -> Scene:
    alice, bob, carol = await admin.users(3)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    b2 = await admin.connect(bob)
    c = await admin.connect(carol)
    conv = await a.create([bob.id, carol.id], name="Equipe", text="one")  # 1, 2
    await b.send(conv, "two")  # 3
    left = await b.ok("leave", client_msg_id=cmid(), conv=conv)  # 4
    assert left["first_seq"] == 4
    await a.send(conv, SECRET, tag="important")  # 5
    await a.ok("rename", client_msg_id=cmid(), conv=conv, name="Equipe sans Bob")  # 6
    await c.send(conv, "still here")  # 7
    await c.wait_seq(conv, 7)
    return Scene(alice, bob, carol, a, b, b2, c, conv)


def no_secret(frames: list[dict[str, Any]]) -> bool:
    return all(SECRET not in repr(f) and "Equipe sans Bob" not in repr(f) for f in frames)


async def test_leaver_gets_their_left_event_and_no_later_push(admin: Admin) -> None:
    s = await leave_scenario(admin)
    for device in (s.b, s.b2):
        await device.flush()  # anything queued for it before now has arrived
        assert device.seqs(s.conv) == [1, 2, 3, 4]
        assert device.events(s.conv)[-1]["kind"] == "left"
        assert device.events(s.conv)[-1]["user"] == s.bob.id
        assert no_secret(device.pushes)
    await s.a.flush()
    assert s.a.seqs(s.conv) == [1, 2, 3, 4, 5, 6, 7]


async def test_leaver_history_stops_at_the_leave(admin: Admin) -> None:
    s = await leave_scenario(admin)
    window = await s.b.ok("history", conv=s.conv)
    assert [e["seq"] for e in window["events"]] == [1, 2, 3, 4]
    assert (window["has_more"], window["archived"]) == (False, False)
    after = await s.b.ok("history", conv=s.conv, after=3)
    assert [e["seq"] for e in after["events"]] == [4]
    assert (await s.b.ok("history", conv=s.conv, after=4))["events"] == []
    before = await s.b.ok("history", conv=s.conv, before=100, limit=2)
    assert [e["seq"] for e in before["events"]] == [3, 4]
    assert no_secret([window, after, before])


async def test_leaver_resume_stops_at_the_leave(admin: Admin) -> None:
    s = await leave_scenario(admin)
    fresh = await admin.connect(s.bob, sync=False)
    reply = await fresh.sync({})
    assert fresh.seqs(s.conv) == [1, 2, 3, 4]
    assert [s.conv, 4] in reply["convs"]
    behind = await admin.connect(s.bob, sync=False)
    await behind.sync({s.conv: 2})
    assert behind.seqs(s.conv) == [3, 4]
    assert no_secret(fresh.pushes + behind.pushes)


async def test_leaver_list_entry_is_frozen_at_the_leave(admin: Admin) -> None:
    s = await leave_scenario(admin)
    (entry,) = (await s.b.ok("list"))["conversations"]
    assert entry["conv"] == s.conv and entry["member"] is False
    assert entry["name"] == "Equipe"  # not the name given after the leave
    assert sorted(entry["members"]) == sorted([s.alice.id, s.carol.id])
    assert entry["last_seq"] == 4 and entry["last"]["kind"] == "left"
    assert entry["unread"] == 1  # "one" from alice; nothing after the leave counts
    read = await s.b.ok("read", conv=s.conv, seq=10**6)
    assert (read["read_seq"], read["unread"]) == (4, 0)  # clamped to the leave
    (entry_a,) = (await s.a.ok("list"))["conversations"]
    assert entry_a["name"] == "Equipe sans Bob" and entry_a["last_seq"] == 7
    assert entry_a["unread"] == 2  # bob's "two" and carol's "still here"
    assert no_secret([entry])


async def test_leaver_can_no_longer_write(admin: Admin) -> None:
    s = await leave_scenario(admin)
    conv = s.conv
    assert await s.b.error("send", client_msg_id=cmid(), conv=conv, text="x") == "not_a_member"
    assert await s.b.error("rename", client_msg_id=cmid(), conv=conv, name="x") == "not_a_member"
    assert await s.b.error("leave", client_msg_id=cmid(), conv=conv) == "not_a_member"
    assert await s.b.error("add", client_msg_id=cmid(), conv=conv, user=s.carol.id) == (
        "not_a_member"
    )
    await s.c.flush()
    assert s.c.seqs(conv)[-1] == 7  # nothing was appended


async def test_nobody_can_remove_someone_else(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id])
    # "leave" only ever concerns the sender: there is no field to name someone else.
    reply = await a.request("leave", client_msg_id=cmid(), conv=conv, user=bob.id)
    assert (reply["op"], reply["code"]) == ("error", "invalid_request")
    await a.wait_seq(conv, 2)
    await a.flush()
    assert a.seqs(conv) == [1, 2]


async def test_readded_leaver_sees_from_the_new_join_only(admin: Admin) -> None:
    s = await leave_scenario(admin)
    readd = await s.c.ok("add", client_msg_id=cmid(), conv=s.conv, user=s.bob.id)  # 8
    assert readd["first_seq"] == 8
    await s.a.send(s.conv, "welcome back")  # 9
    for device in (s.b, s.b2):
        await device.wait_seq(s.conv, 9)
        await device.flush()
        assert device.seqs(s.conv) == [1, 2, 3, 4, 8, 9]
        assert no_secret(device.pushes)
    window = await s.b.ok("history", conv=s.conv)
    assert [e["seq"] for e in window["events"]] == [1, 2, 3, 4, 8, 9]
    assert no_secret([window])
    fresh = await admin.connect(s.bob, sync=False)
    await fresh.sync({})
    assert fresh.seqs(s.conv) == [1, 2, 3, 4, 8, 9]
    (entry,) = (await s.b.ok("list"))["conversations"]
    assert entry["member"] is True and entry["name"] == "Equipe sans Bob"
    assert entry["last_seq"] == 9
    await s.b.send(s.conv, "merci")  # may write again
    await s.a.wait_seq(s.conv, 10)


async def test_leaving_devices_keep_other_conversations(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a: WsClient = await admin.connect(alice)
    b: WsClient = await admin.connect(bob)
    left = await a.create([bob.id], name="left")
    kept = await a.create([bob.id], name="kept")
    await b.ok("leave", client_msg_id=cmid(), conv=left)
    await a.send(left, "gone")
    await a.send(kept, "still")
    await b.wait_seq(kept, 3)
    await b.flush()
    assert b.seqs(left) == [1, 2, 3] and b.seqs(kept) == [1, 2, 3]
