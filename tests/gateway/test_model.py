"""Random operation sequences by several clients, checked against a model — over real sockets.

Three users; the first has two devices (requests go through the first, the second only
listens), the others one each.  Hypothesis draws a sequence of operations (create, send with a
tag, add, leave, rename, read, retry of the last mutation, reconnect-and-resume of a device);
after each one the reply is checked against an independent model of the conversations
(its events; who may see what of them, windows, tops and unread counts from the reference
rule, :mod:`chatd.core.visibility`).  At the end every device must have received exactly
the events its user may see — in seq order, once each, with the right content — and every
user's list, window and read markers must match the model.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st

from chatd.core import visibility
from chatd.core.events import Event
from chatd.core.records import EventPage, Interval
from chatd.gateway.protocol import MAX_INT
from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import Account, Admin, ServerProcess

USERS = 3
WINDOW = 200
NAMES = ["Alpha", "Beta", "Gamma"]


@dataclass
class MConv:
    """The model of one conversation: the events it should hold, and the read markers asked
    for.  Who may see what of it is :mod:`chatd.core.visibility`'s to say (the reference)."""

    id: int
    events: list[Event] = field(default_factory=list)
    read: dict[int, int] = field(default_factory=dict)

    def append(self, kind: str, sender: int, payload: dict[str, Any]) -> None:
        self.events.append(Event(self.id, len(self.events) + 1, kind, sender, 0, payload))

    def intervals(self) -> dict[int, tuple[Interval, ...]]:
        return visibility.intervals_from_log(self.events)

    def intervals_of(self, user: int) -> tuple[Interval, ...]:
        return self.intervals().get(user, ())

    def knows(self, user: int) -> bool:
        """Whether the user is or was in the conversation (it exists for them)."""
        return bool(self.intervals_of(user))

    def members_after(self, seq: int) -> frozenset[int]:
        return visibility.members_after(self.intervals(), seq)

    def is_member(self, user: int) -> bool:
        return visibility.is_member(self.intervals_of(user))

    def visible_seqs(self, user: int) -> list[int]:
        return [e.seq for e in visibility.visible_events(self.events, self.intervals_of(user))]

    def top(self, user: int) -> int:
        return visibility.top(self.intervals_of(user), len(self.events))

    def name_at(self, seq: int) -> str:
        names = [e.payload["name"] for e in self.events[:seq] if e.kind in ("created", "renamed")]
        return str(names[-1])

    def unread(self, user: int) -> int:
        return visibility.unread(
            self.events, self.intervals_of(user), user, self.read.get(user, 0), WINDOW
        )

    def latest_page(self, user: int, limit: int) -> EventPage:
        """``history`` without ``after`` nor ``before``: the newest page of the window."""
        return visibility.page_before(
            self.id, self.events, self.intervals_of(user), WINDOW, MAX_INT + 1, limit
        )


@dataclass
class Device:
    user: int
    client: WsClient
    log: list[dict[str, Any]] = field(default_factory=list)  # pushes of earlier connections

    def pushes(self) -> list[dict[str, Any]]:
        return self.log + self.client.pushes

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.pushes() if m["op"] == "event"]


send_op = st.tuples(
    st.just("send"),
    st.integers(0, USERS - 1),
    st.integers(0, 9),
    st.sampled_from([None, "important", "question"]),
)
add_op = st.tuples(st.just("add"), st.integers(0, USERS - 1), st.integers(0, 9), st.integers(0, 2))
op_strategy = st.one_of(
    st.tuples(
        st.just("create"),
        st.integers(0, USERS - 1),
        st.sets(st.integers(0, USERS - 1), min_size=1, max_size=2),
        st.sampled_from(NAMES),
        st.booleans(),
    ),
    send_op,
    send_op,
    send_op,
    send_op,  # messages are most of real traffic
    add_op,
    add_op,
    st.tuples(st.just("leave"), st.integers(0, USERS - 1), st.integers(0, 9)),
    st.tuples(
        st.just("rename"), st.integers(0, USERS - 1), st.integers(0, 9), st.sampled_from(NAMES)
    ),
    st.tuples(st.just("read"), st.integers(0, USERS - 1), st.integers(0, 9), st.integers(0, 40)),
    st.tuples(st.just("retry")),
    st.tuples(st.just("reconnect"), st.integers(0, USERS)),
)


class Run:
    def __init__(self, admin: Admin, accounts: list[Account], devices: list[Device]) -> None:
        self.admin = admin
        self.accounts = accounts
        self.ids = [a.id for a in accounts]
        self.devices = devices
        self.convs: list[MConv] = []
        self.last_ok: tuple[Device, str, dict[str, Any], dict[str, Any]] | None = None
        self.texts = itertools.count()
        self.errors = 0

    def device_of(self, index: int) -> Device:
        return self.devices[index]  # user i's requesting device is devices[i]

    async def mutate(
        self, device: Device, op: str, fields: dict[str, Any], expect: str | None
    ) -> dict[str, Any] | None:
        fields = {"client_msg_id": cmid(), **fields}
        reply = await device.client.request(op, **fields)
        if expect is not None:
            self.errors += 1
            assert (reply["op"], reply.get("code")) == ("error", expect), (op, fields, reply)
            return None
        assert reply["op"] == "ok" and reply["duplicate"] is False, (op, fields, reply)
        self.last_ok = (device, op, fields, reply)
        return reply

    def rule_error(self, conv: MConv, user: int) -> str | None:
        if not conv.knows(user):
            return "conversation_not_found"
        if not conv.is_member(user):
            return "not_a_member"
        return None

    async def step(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "create":
            _, actor, others, name, with_text = op
            others = sorted(self.ids[o] for o in others if o != actor)
            if not others:
                return
            user = self.ids[actor]
            fields: dict[str, Any] = {"members": others, "name": name}
            if with_text:
                fields["text"] = f"t{next(self.texts)}"
            reply = await self.mutate(self.device_of(actor), "create", fields, None)
            assert reply is not None
            conv = MConv(reply["conv"])
            conv.append("created", user, {"name": name, "members": [user, *others]})
            if with_text:
                conv.append("message", user, {"text": fields["text"], "tag": None})
            assert (reply["first_seq"], reply["last_seq"]) == (1, len(conv.events))
            self.convs.append(conv)
            return
        if kind == "retry":
            if self.last_ok is not None:
                device, name, fields, first = self.last_ok
                again = await device.client.ok(name, **fields)
                assert again["duplicate"] is True
                assert (again["conv"], again["first_seq"], again["last_seq"]) == (
                    first["conv"],
                    first["first_seq"],
                    first["last_seq"],
                )
            return
        if kind == "reconnect":
            await self.reconnect(self.devices[op[1]])
            return
        if not self.convs:
            return
        actor, conv = op[1], self.convs[op[2] % len(self.convs)]
        user, device = self.ids[actor], self.device_of(actor)
        error = self.rule_error(conv, user)
        if kind == "send":
            text = f"t{next(self.texts)}"
            fields = {"conv": conv.id, "text": text, "tag": op[3]}
            if await self.mutate(device, "send", fields, error):
                conv.append("message", user, {"text": text, "tag": op[3]})
        elif kind == "add":
            target = self.ids[op[3]]
            if error is None and conv.is_member(target):
                error = "already_member"
            if await self.mutate(device, "add", {"conv": conv.id, "user": target}, error):
                conv.append("joined", user, {"user": target})
        elif kind == "leave":
            if await self.mutate(device, "leave", {"conv": conv.id}, error):
                conv.append("left", user, {"user": user})
        elif kind == "rename":
            if await self.mutate(device, "rename", {"conv": conv.id, "name": op[3]}, error):
                conv.append("renamed", user, {"name": op[3]})
        elif kind == "read":
            reply = await device.client.request("read", conv=conv.id, seq=op[3])
            if not conv.knows(user):
                assert reply.get("code") == "conversation_not_found", reply
                return
            expected = visibility.read_marker(conv.read.get(user, 0), op[3], conv.top(user))
            conv.read[user] = expected
            assert (reply["op"], reply["read_seq"], reply["unread"]) == (
                "ok",
                expected,
                conv.unread(user),
            ), reply

    async def reconnect(self, device: Device) -> None:
        held: dict[int, int] = {}
        await device.client.flush()
        for event in device.events():
            held[event["conv"]] = event["seq"]
        device.log = device.pushes()
        await device.client.close()
        account = next(a for a in self.accounts if a.id == device.user)
        device.client = await self.admin.connect(account, sync=False)
        await device.client.sync(held)

    async def check(self) -> None:
        for device in self.devices:
            for conv in self.convs:
                seqs = conv.visible_seqs(device.user)
                if seqs:
                    await device.client.wait_until(
                        lambda d=device, c=conv, s=seqs[-1]: any(  # type: ignore[misc]
                            e["conv"] == c.id and e["seq"] >= s for e in d.events()
                        )
                    )
            await device.client.flush()
            received = device.events()
            for conv in self.convs:
                got = [e for e in received if e["conv"] == conv.id]
                assert [e["seq"] for e in got] == conv.visible_seqs(device.user), (
                    conv.id,
                    device.user,
                )
                for event in got:
                    logged = conv.events[event["seq"] - 1]
                    assert (event["kind"], event["sender"]) == (logged.kind, logged.sender)
                    for key, value in logged.payload.items():
                        if key == "members":
                            assert sorted(event[key]) == sorted(value)
                        else:
                            assert event[key] == value
        for index, user in enumerate(self.ids):
            client = self.device_of(index).client
            listed = {e["conv"]: e for e in (await client.ok("list"))["conversations"]}
            mine = [c for c in self.convs if c.knows(user)]
            assert set(listed) == {c.id for c in mine}
            for conv in mine:
                entry, top = listed[conv.id], conv.top(user)
                assert entry["member"] is conv.is_member(user)
                assert entry["last_seq"] == top and entry["last"]["seq"] == top
                assert entry["name"] == conv.name_at(top)
                assert sorted(entry["members"]) == sorted(conv.members_after(top))
                assert entry["unread"] == conv.unread(user)
                assert entry["read_seq"] == conv.read.get(user, 0)
                window = await client.ok("history", conv=conv.id, limit=100)
                assert [e["seq"] for e in window["events"]] == conv.visible_seqs(user)[-100:]
                page = conv.latest_page(user, 100)
                assert [e["seq"] for e in window["events"]] == [e.seq for e in page.events]
                assert (window["archived"], window["has_more"], window["window_start"]) == (
                    page.archived,
                    page.has_more,
                    page.window_start,
                )
        # The passive second device of user 0 got user 0's read markers pushed.
        listener = self.devices[USERS]
        for conv in self.convs:
            if self.ids[0] in conv.read:
                states = [
                    s for s in listener.pushes() if s["op"] == "state" and s["conv"] == conv.id
                ]
                if states or conv.read[self.ids[0]] > 0:
                    assert states and states[-1]["read_seq"] == conv.read[self.ids[0]]


async def scenario(server: ServerProcess, password_hash: str, ops: list[tuple[Any, ...]]) -> None:
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    try:
        accounts = await admin.users(USERS)
        devices = [Device(a.id, await admin.connect(a)) for a in accounts]
        devices.append(Device(accounts[0].id, await admin.connect(accounts[0])))
        run = Run(admin, accounts, devices)
        # Every run starts with a group conversation, so that no drawn operation is wasted.
        for op in [("create", 0, {1, 2}, NAMES[0], True), *ops]:
            await run.step(op)
        await run.check()
        statistic(f"events appended: {min(sum(len(c.events) for c in run.convs) // 10 * 10, 50)}+")
        statistic(f"rule errors answered: {min(run.errors, 5)}+")
    finally:
        await admin.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op_strategy, min_size=10, max_size=40))
def test_random_operations_match_the_model(
    server: ServerProcess, password_hash: str, ops: list[tuple[Any, ...]]
) -> None:
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(scenario(server, password_hash, ops), 60))
    assert time.monotonic() - started < 60
