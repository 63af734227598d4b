"""Two gateway nodes over one store and one real NATS: a message sent on one node reaches a
device on the other through a pointer, and with NATS down no acked message is lost — the
other node's devices catch up from the store, without a gap or a duplicate, once live
delivery comes back.

Both nodes run in this process on one SQLite store (the store of a cluster is PostgreSQL; the
broker neither knows nor cares), each with its own services, hub, fan-out and NatsBroker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn

from chatd.broker.nats import NatsBroker
from chatd.gateway.server import bind, uvicorn_config
from chatd.wiring import Process, build_gateway, build_services
from tests.gateway.client import WsClient
from tests.gateway.inprocess import START_TIMEOUT, InProcessServer, serving
from tests.servers.nats import NatsServer

WAIT_S = 20.0


@asynccontextmanager
async def second_node(first: InProcessServer, broker: NatsBroker) -> AsyncIterator[str]:
    """Another gateway on ``first``'s store with its own broker; yields its WebSocket URL."""
    settings, store = first.process.settings, first.process.store
    await broker.start()
    services = build_services(settings, store, broker)
    process = Process(settings, store, broker, services, "second-node")
    server = uvicorn.Server(uvicorn_config(settings, build_gateway(process)))
    server.config.log_level = "warning"
    sock = bind(settings.gateway.host, 0)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:  # uvicorn has no started event to await
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/v1/ws"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, START_TIMEOUT)
        sock.close()
        await broker.stop()


async def test_nats_down_loses_no_acked_message_and_the_other_node_catches_up(
    tmp_path: Path, nats_factory: Callable[..., NatsServer]
) -> None:
    nats = nats_factory()
    subject = f"chatd.test{uuid.uuid4().hex}.pub"
    # A queue of 2: most of what node A publishes during the outage is dropped, so node B
    # can only get it from the store.
    broker_a = NatsBroker(nats.url, "node-a", subject=subject, reconnect_seconds=0.2, queue_limit=2)
    broker_b = NatsBroker(nats.url, "node-b", subject=subject, reconnect_seconds=0.2)
    async with serving(tmp_path, broker_a) as node_a, second_node(node_a, broker_b) as url_b:
        (_, anne_token), (bruno, bruno_token) = [
            await node_a.user(name) for name in ("Anne", "Bruno")
        ]
        on_a = await WsClient.open(node_a.ws_url, anne_token)
        on_b = await WsClient.open(url_b, bruno_token)
        try:
            for device in (on_a, on_b):
                await device.sync()
            conv = await on_a.create([bruno], "Deux nœuds")
            await on_b.wait_seq(conv, 2, WAIT_S)  # across nodes: a pointer, read from the store
            assert broker_b.received >= 1

            nats.stop()  # NATS down: node A still acks every message from its store
            acked = [
                (await on_a.send(conv, f"pendant la panne {i}"))["last_seq"] for i in range(20)
            ]
            assert acked == list(range(3, 23))
            await on_a.wait_seq(conv, 22, WAIT_S)  # node A's own devices never wait for NATS
            assert broker_a.dropped > 0

            nats.start()
            async with asyncio.timeout(WAIT_S):
                await broker_a.wait_connections(2)
                await broker_b.wait_connections(2)
            last = (await on_a.send(conv, "après la panne"))["last_seq"]
            await on_b.wait_seq(conv, last, WAIT_S)  # live again; the gap is filled
            for device in (on_a, on_b):
                await device.flush()
                assert device.seqs(conv) == list(range(1, last + 1))  # no gap, no duplicate
            texts = [e["text"] for e in on_b.events(conv) if e["kind"] == "message"]
            assert texts[1:] == [f"pendant la panne {i}" for i in range(20)] + ["après la panne"]
        finally:
            for device in (on_a, on_b):
                await device.close()
