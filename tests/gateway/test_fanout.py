"""Operations and live fan-out over real sockets: several users, several devices each."""

from __future__ import annotations

import asyncio

from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import Admin


def kinds(client: WsClient, conv: int) -> list[str]:
    return [e["kind"] for e in client.events(conv)]


async def test_create_reaches_every_device_of_every_member_once(admin: Admin) -> None:
    alice, bob, carol, dave = await admin.users(4)
    alice_phone = await admin.connect(alice)
    alice_laptop = await admin.connect(alice)
    bob_phone = await admin.connect(bob)
    bob_tablet = await admin.connect(bob)
    carol_phone = await admin.connect(carol)
    dave_phone = await admin.connect(dave)  # not invited

    ack = await alice_phone.ok(
        "create",
        client_msg_id=cmid(),
        members=[bob.id, carol.id],
        name="Suivi Mme D.",
        text="Bonjour, pouvez-vous passer ?",
        tag="question",
    )
    conv = ack["conv"]
    assert (ack["first_seq"], ack["last_seq"], ack["duplicate"]) == (1, 2, False)
    members = [alice_phone, alice_laptop, bob_phone, bob_tablet, carol_phone]
    for client in members:
        await client.wait_seq(conv, 2)
    for client in members:
        await client.flush()
        assert client.seqs(conv) == [1, 2]  # exactly once each
        created, message = client.events(conv)
        assert created["kind"] == "created" and created["sender"] == alice.id
        assert created["name"] == "Suivi Mme D."
        assert sorted(created["members"]) == sorted([alice.id, bob.id, carol.id])
        assert message["kind"] == "message" and message["tag"] == "question"
        assert message["text"] == "Bonjour, pouvez-vous passer ?"
        assert message["ts"] >= created["ts"] > 0
    await dave_phone.flush()
    assert dave_phone.events() == []


async def test_add_rename_and_tags_reach_everyone_including_the_added(admin: Admin) -> None:
    alice, bob, carol = await admin.users(3)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    c = await admin.connect(carol)
    conv = await a.create([bob.id], name="Avant")
    joined = await b.ok("add", client_msg_id=cmid(), conv=conv, user=carol.id)  # any member may
    assert joined["first_seq"] == 3
    await c.wait_seq(conv, 3)
    event = c.events(conv)[0]
    assert (event["kind"], event["sender"], event["user"], event["seq"]) == (
        "joined",
        bob.id,
        carol.id,
        3,
    )  # who added whom; the added user sees only from their join on
    await a.ok("rename", client_msg_id=cmid(), conv=conv, name="  Après  ")
    await c.send(conv, "urgent", tag="important")
    await c.send(conv, "plain")
    for client in (a, b, c):
        await client.wait_seq(conv, 6)
    assert kinds(a, conv) == ["created", "message", "joined", "renamed", "message", "message"]
    assert kinds(c, conv) == ["joined", "renamed", "message", "message"]
    renamed = c.events(conv)[1]
    assert renamed["name"] == "Après" and renamed["sender"] == alice.id
    assert [e.get("tag") for e in b.events(conv)[-2:]] == ["important", None]
    window = await c.ok("history", conv=conv)
    assert [e["seq"] for e in window["events"]] == [3, 4, 5, 6]
    assert window["archived"] is False and window["window_start"] == 3


async def test_rule_errors_are_answered_and_change_nothing(admin: Admin) -> None:
    alice, bob, carol = await admin.users(3)
    a = await admin.connect(alice)
    c = await admin.connect(carol)
    conv = await a.create([bob.id])
    assert await c.error("send", client_msg_id=cmid(), conv=conv, text="x") == (
        "conversation_not_found"
    )
    assert await c.error("history", conv=conv) == "conversation_not_found"
    assert await c.error("read", conv=conv, seq=1) == "conversation_not_found"
    assert await a.error("add", client_msg_id=cmid(), conv=conv, user=bob.id) == "already_member"
    assert await a.error("add", client_msg_id=cmid(), conv=conv, user=10**9) == "user_not_found"
    assert await a.error("create", client_msg_id=cmid(), members=[10**9], name="n") == (
        "user_not_found"
    )
    assert await a.error("create", client_msg_id=cmid(), members=[alice.id], name="n") == (
        "invalid_request"
    )
    assert await a.error("send", client_msg_id=cmid(), conv=conv, text="   ") == "invalid_request"
    assert await a.error("rename", client_msg_id=cmid(), conv=conv, name=" ") == "invalid_request"
    assert await a.error("rename", client_msg_id=cmid(), conv=conv, name="x" * 201) == (
        "invalid_request"
    )
    await a.wait_seq(conv, 2)
    await a.flush()
    assert a.seqs(conv) == [1, 2]
    listed = (await a.ok("list"))["conversations"]
    assert [(e["conv"], e["last_seq"]) for e in listed] == [(conv, 2)]


async def test_retry_with_the_same_client_msg_id_returns_the_original(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    create_id = cmid()
    first = await a.ok("create", client_msg_id=create_id, members=[bob.id], name="n", text="t")
    again = await a.ok("create", client_msg_id=create_id, members=[bob.id], name="n", text="t")
    assert (again["conv"], again["first_seq"], again["last_seq"]) == (first["conv"], 1, 2)
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    conv = first["conv"]
    sent = await a.send(conv, "once", client_msg_id="retry-me")
    # The retry comes from another device of the same user, after a reconnect: same answer.
    a2 = await admin.connect(alice)
    retried = await a2.send(conv, "once", client_msg_id="retry-me")
    assert (retried["first_seq"], retried["duplicate"]) == (sent["first_seq"], True)
    await b.wait_seq(conv, 3)
    await b.flush()
    assert b.seqs(conv) == [1, 2, 3]  # no second event, no second push
    assert [e["text"] for e in b.events(conv) if e["kind"] == "message"] == ["t", "once"]


async def test_concurrent_senders_are_seen_in_the_same_dense_order_by_all(admin: Admin) -> None:
    users = await admin.users(4)
    clients = [await admin.connect(u) for u in users]
    extra_device = await admin.connect(users[1])
    conv = await clients[0].create([u.id for u in users[1:]], text=None)
    other = await clients[1].create([users[0].id, users[2].id], text=None)

    async def chatter(client: WsClient, who: int) -> None:
        for i in range(15):
            await client.send(conv, f"{who}-{i}")
            if i % 3 == 0 and who < 3:
                await client.send(other, f"o{who}-{i}")

    await asyncio.gather(*(chatter(c, i) for i, c in enumerate(clients)))
    last = 1 + 15 * 4
    readers = [*clients, extra_device]
    for client in readers:
        await client.wait_seq(conv, last)
    for client in readers:
        await client.flush()
        assert client.seqs(conv) == list(range(1, last + 1))  # in order, no gap, no dup
    orders = {tuple((e["sender"], e["text"]) for e in c.events(conv)[1:]) for c in readers}
    assert len(orders) == 1  # everyone saw the same order
    for i, client in enumerate(clients):  # a sender's own messages keep their order
        mine = [
            e["text"]
            for e in client.events(conv)
            if e["sender"] == users[i].id and e["kind"] == "message"
        ]
        assert mine == [f"{i}-{k}" for k in range(15)]
    assert clients[3].events(other) == []  # not a member of the other conversation
    other_last = clients[0].seqs(other)[-1]
    assert clients[2].seqs(other) == list(range(1, other_last + 1))


async def test_users_lookup_and_list(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], name="Liste", text="x" * 500)  # profiles of fellows only
    found = await a.ok("users", ids=[bob.id, 10**9, bob.id])
    assert [u["id"] for u in found["users"]] == [bob.id]
    assert set(found["users"][0]) == {
        "id",
        "first_name",
        "last_name",
        "profession",
        "structure",
        "disabled",
    }  # no e-mail, no login, no password hash
    assert found["unknown"] == [10**9]
    (entry,) = (await a.ok("list"))["conversations"]
    assert entry["conv"] == conv and entry["name"] == "Liste" and entry["member"] is True
    assert sorted(entry["members"]) == sorted([alice.id, bob.id])
    assert (entry["last_seq"], entry["unread"]) == (2, 0)
    assert entry["last"]["text"] == "x" * 200 and entry["last"]["truncated"] is True
