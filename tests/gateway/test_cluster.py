"""Three ``chatd serve`` nodes on one PostgreSQL and one NATS (issue 14, several nodes): users
connected to different nodes converse; every event reaches every device of every member
exactly once, in seq order; a leaver on one node gets nothing after the leave, on any read
path; a logout on one node closes that token's socket on the other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chatd.crypto.keyring import KeyRing, load_key_file, write_key_file
from chatd.gateway.protocol import CloseCode
from chatd.store.postgres.store import PostgresStore
from tests.conftest import run_chatd
from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import Admin, ServerProcess, start_server, stop_server
from tests.servers.nats import NatsServer

CLOSE_WITHIN_S = 10.0  # the promise is a second; a generous bound on a busy machine


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    admin: Admin  # its clients go to nodes[0]; connect() picks a node


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """DATA_DIR, the storage every node mounts: the key file, attachments, checkpoints."""
    directory = tmp_path / "shared"
    directory.mkdir()
    write_key_file(directory / "master.keys", KeyRing.generate(), replace=False)
    return directory


def start_nodes(
    tmp_path: Path,
    shared: Path,
    dsn: str,
    broker_url: str | None,
    names: tuple[str, ...],
    *,
    head_poll_seconds: int = 3600,  # only NATS can bring an event in time, unless a test says
) -> list[ServerProcess]:
    env = {"CHATD_DATABASE_URL": dsn}
    migrated = run_chatd(shared, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    started: list[ServerProcess] = []
    try:
        for name in names:
            (tmp_path / name).mkdir()
            extra = {
                **env,
                "CHATD_NODE_ID": f"noeud-{name}",
                "CHATD_DATA_DIR": str(shared),
                "CHATD_REVOCATION_SECONDS": "3600",  # only NATS can close a socket in time
                "CHATD_HEAD_POLL_SECONDS": str(head_poll_seconds),
            }
            if broker_url is not None:
                extra["CHATD_BROKER_URL"] = broker_url
            started.append(start_server(tmp_path / name, extra))
    except BaseException:
        for node in started:
            stop_server(node)
        raise
    return started


@pytest.fixture
def nodes(
    tmp_path: Path, shared: Path, postgres_dsn: str, nats_url: str
) -> Iterator[list[ServerProcess]]:
    started = start_nodes(tmp_path, shared, postgres_dsn, nats_url, ("a", "b", "c"))
    yield started
    for node in started:
        stop_server(node)


@asynccontextmanager
async def administered(
    nodes: list[ServerProcess], shared: Path, dsn: str, password_hash: str
) -> AsyncIterator[Cluster]:
    """The nodes with an administrator: a store of its own on their database."""
    store = PostgresStore(
        dsn,
        load_key_file(shared / "master.keys"),
        checkpoint_log=shared / "chatd.checkpoints",
        migrate=False,
    )
    await store.open()
    admin = Admin(nodes[0], store, password_hash)
    try:
        yield Cluster(nodes, admin)
    finally:
        await admin.close()


@pytest.fixture
async def cluster(
    nodes: list[ServerProcess], shared: Path, postgres_dsn: str, password_hash: str
) -> AsyncIterator[Cluster]:
    async with administered(nodes, shared, postgres_dsn, password_hash) as ready:
        yield ready


async def connect(cluster: Cluster, node: int, token: str) -> WsClient:
    client = await WsClient.open(cluster.nodes[node].ws_url, token)
    cluster.admin.clients.append(client)
    await client.sync()
    return client


async def test_users_on_two_nodes_converse_and_every_device_gets_every_event_once_in_order(
    cluster: Cluster,
) -> None:
    alice, bob, carol = await cluster.admin.users(3)
    carol_c_token = await cluster.admin.token(carol.id)
    a_alice = await connect(cluster, 0, alice.token)
    b_bob = await connect(cluster, 1, bob.token)
    a_carol = await connect(cluster, 0, carol.token)
    c_carol = await connect(cluster, 2, carol_c_token)
    conv = await a_alice.create([bob.id, carol.id], text="bonjour")
    # Both nodes send at once, into one conversation.
    await asyncio.gather(
        *(a_alice.send(conv, f"de A {i}") for i in range(10)),
        *(b_bob.send(conv, f"de B {i}") for i in range(10)),
    )
    last = 2 + 20  # created, bonjour, 20 messages
    devices = (a_alice, b_bob, a_carol, c_carol)
    for device in devices:
        await device.wait_seq(conv, last)
        await device.flush()
        assert device.seqs(conv) == list(range(1, last + 1))  # once each, in seq order
    texts = {e.get("text") for e in c_carol.events(conv)}
    assert {f"de A {i}" for i in range(10)} <= texts and {f"de B {i}" for i in range(10)} <= texts


async def test_a_leaver_on_one_node_gets_nothing_after_the_leave_on_any_node(
    cluster: Cluster,
) -> None:
    alice, bob = await cluster.admin.users(2)
    bob_elsewhere = await cluster.admin.token(bob.id)
    a_alice = await connect(cluster, 0, alice.token)
    b_bob = await connect(cluster, 1, bob.token)
    a_bob = await connect(cluster, 0, bob_elsewhere)
    conv = await a_alice.create([bob.id], text="avant")
    await b_bob.ok("leave", client_msg_id=cmid(), conv=conv)  # seq 3, on node B
    c_alice = await connect(cluster, 2, await cluster.admin.token(alice.id))
    await c_alice.send(conv, "après")  # seq 4, on node C
    await a_alice.wait_seq(conv, 4)
    for device in (b_bob, a_bob):
        await device.flush()
        assert device.seqs(conv) == [1, 2, 3]
        window = await device.ok("history", conv=conv)
        assert [e["seq"] for e in window["events"]] == [1, 2, 3]
        assert (await device.ok("history", conv=conv, after=3))["events"] == []
    fresh = await WsClient.open(cluster.nodes[0].ws_url, bob.token)
    cluster.admin.clients.append(fresh)
    await fresh.sync({conv: 1})
    await fresh.flush()
    assert fresh.seqs(conv) == [2, 3]


async def test_a_logout_on_one_node_closes_the_tokens_socket_on_the_other(
    cluster: Cluster,
) -> None:
    account = await cluster.admin.user()
    on_b = await connect(cluster, 1, account.token)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=cluster.nodes[0].base_url) as http:
        response = await http.post(
            "/v1/auth/logout", headers={"Authorization": f"Bearer {account.token}"}
        )
    assert response.json() == {"revoked": True}
    assert await on_b.wait_closed(CLOSE_WITHIN_S) == (CloseCode.LOGGED_OUT, "logged_out")
    assert time.monotonic() - started < CLOSE_WITHIN_S


async def broker_is_back(node: ServerProcess, within: float) -> None:
    async with httpx.AsyncClient(base_url=node.base_url) as http, asyncio.timeout(within):
        while (await http.get("/healthz")).json()["broker"] != "ok":
            await asyncio.sleep(0.2)  # a probe's pace: the node's state has no event to await


NATS_DOWN_S = 10.0  # the fault's length (issue 14), not a synchronisation
PACE_S = 0.1  # each sender's pace: some 20 messages a second in all


async def test_nats_down_for_ten_seconds_under_load_loses_nothing_and_delivery_comes_back(
    tmp_path: Path,
    shared: Path,
    postgres_dsn: str,
    password_hash: str,
    nats_factory: Callable[..., NatsServer],
) -> None:
    nats = nats_factory()
    # The head poll is what finds the pointers lost while NATS was away, or published by one
    # node before the other had subscribed again.
    started = start_nodes(tmp_path, shared, postgres_dsn, nats.url, ("a", "b"), head_poll_seconds=1)
    try:
        async with administered(started, shared, postgres_dsn, password_hash) as cluster:
            await nats_down_scenario(cluster, nats, started)
    finally:
        for node in started:
            stop_server(node)


async def nats_down_scenario(
    cluster: Cluster, nats: NatsServer, started: list[ServerProcess]
) -> None:
    admin = cluster.admin
    alice, bob = await admin.users(2)
    a_alice = await connect(cluster, 0, alice.token)
    b_bob = await connect(cluster, 1, bob.token)
    b_alice = await connect(cluster, 1, await admin.token(alice.id))
    conv = await a_alice.create([bob.id], text="avant la panne")
    await b_bob.wait_seq(conv, 2)
    acked: list[int] = []
    up = asyncio.Event()

    async def sender(client: WsClient, tag: str) -> None:
        while not up.is_set():  # under load, before, during and after the outage
            sent = await client.send(conv, f"{tag} {len(acked)}")
            acked.append(int(sent["first_seq"]))
            await asyncio.sleep(PACE_S)  # the load's pace (under the rate limit)

    senders = [asyncio.create_task(sender(c, t)) for c, t in ((a_alice, "A"), (b_bob, "B"))]
    await asyncio.to_thread(nats.stop)
    started_down = time.monotonic()
    await asyncio.sleep(NATS_DOWN_S)  # the outage lasts this long (a fault, not a wait)
    assert time.monotonic() - started_down >= NATS_DOWN_S
    await asyncio.to_thread(nats.start)
    up.set()
    await asyncio.gather(*senders)
    # Live delivery comes back: a message after the outage reaches the other node.
    last = int((await a_alice.send(conv, "après la panne"))["first_seq"])
    for device in (a_alice, b_bob, b_alice):
        await device.wait_seq(conv, last, timeout=60)
        await device.flush()
        assert device.seqs(conv) == list(range(1, last + 1)), "a gap or a duplicate"
    assert len(set(acked)) == len(acked) and max(acked) < last  # every ack is in the log
    for node in started:  # and NATS is back too: each node reconnected and subscribed
        await broker_is_back(node, within=60)


async def test_two_nodes_without_a_broker_deliver_through_the_head_poll_alone(
    tmp_path: Path, shared: Path, postgres_dsn: str, password_hash: str
) -> None:
    """No NATS at all: the head poll of each node still brings the other node's events to
    its sessions, in order and once each, within its bound (here a poll a second)."""
    started = start_nodes(tmp_path, shared, postgres_dsn, None, ("a", "b"), head_poll_seconds=1)
    try:
        async with administered(started, shared, postgres_dsn, password_hash) as cluster:
            await converse_without_a_broker(cluster)
    finally:
        for node in started:
            stop_server(node)


async def converse_without_a_broker(cluster: Cluster) -> None:
    admin = cluster.admin
    alice, bob = await admin.users(2)
    a_alice = await connect(cluster, 0, alice.token)
    b_bob = await connect(cluster, 1, bob.token)
    conv = await a_alice.create([bob.id], text="sans courtier")
    for i in range(5):
        await a_alice.send(conv, f"de A {i}")
        await b_bob.send(conv, f"de B {i}")
    last = 2 + 10
    for device in (a_alice, b_bob):
        await device.wait_seq(conv, last, timeout=60)
        await device.flush()
        assert device.seqs(conv) == list(range(1, last + 1)), "a gap or a duplicate"
