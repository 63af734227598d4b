"""Two NatsBrokers on one real nats-server are two nodes: what one publishes reaches the
other's receivers in order (a committed batch as a pointer) and its own receivers once, in
full; a NATS restart, garbage on the subject and a full queue do not stop the flow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from nats.aio.client import Client

from chatd.broker.base import Committed, EndSessions, Publication, ReadMarker, SessionEnd
from chatd.broker.nats import NatsBroker
from chatd.broker.wire import encode
from chatd.core.errors import BrokerUnavailable
from chatd.core.events import Event
from chatd.core.records import ReadState
from tests.servers.nats import NatsServer
from tests.servers.processes import free_port

WAIT_S = 20.0


class Heard:
    """A receiver that keeps what it heard and lets a test wait for the n-th publication."""

    def __init__(self) -> None:
        self.items: list[Publication] = []
        self._queue: asyncio.Queue[Publication] = asyncio.Queue()

    def __call__(self, publication: Publication) -> None:
        self.items.append(publication)
        self._queue.put_nowait(publication)

    async def next(self) -> Publication:
        return await asyncio.wait_for(self._queue.get(), WAIT_S)


@asynccontextmanager
async def nodes(url: str, count: int, **options: float) -> AsyncIterator[list[NatsBroker]]:
    subject = f"chatd.test{uuid.uuid4().hex}.pub"  # the session's server is shared
    async with AsyncExitStack() as stack:
        brokers = []
        for index in range(count):
            broker = NatsBroker(url, f"node-{index}", subject=subject, **options)  # type: ignore[arg-type]
            await broker.start()
            stack.push_async_callback(broker.stop)
            brokers.append(broker)
        yield brokers


def batch(conv: int, *seqs: int) -> Committed:
    return Committed(
        conv,
        tuple(Event(conv, seq, "message", 9, 1, {"text": "Mme Martin, glycémie"}) for seq in seqs),
    )


async def test_every_publication_reaches_the_other_node_in_order(nats_url: str) -> None:
    async with nodes(nats_url, 2) as (a, b):
        here, there = Heard(), Heard()
        a.subscribe(here)
        b.subscribe(there)
        sent: list[Publication] = [batch(4, 1, 2), batch(5, 1)]
        sent += [ReadMarker(9, ReadState(4, 2, 0), origin="x.1")]
        sent += [EndSessions(SessionEnd.LOGGED_OUT, (b"\x01" * 32,))]
        sent += [batch(4, seq) for seq in range(3, 60)]
        sent += [EndSessions(SessionEnd.USER_DISABLED, user_id=9)]
        for publication in sent:
            a.publish(publication)
        assert here.items == sent  # at once, in full, before any network round trip
        expected = [
            Committed.pointer(p.conv_id, *p.span) if isinstance(p, Committed) and p.span else p
            for p in sent
        ]
        got = [await there.next() for _ in expected]
        assert got == expected
        assert all(not p.events for p in got if isinstance(p, Committed))
        back = Heard()
        a.subscribe(back)
        b.publish(ReadMarker(9, ReadState(5, 1, 0)))  # and the other way round
        assert await back.next() == ReadMarker(9, ReadState(5, 1, 0))
        assert here.items[: len(sent)] == sent and len(here.items) == len(sent) + 1  # no echo
        assert (a.sent, b.received, a.dropped) == (len(sent), len(sent), 0)


async def test_publications_flow_again_after_nats_restarts(
    nats_factory: Callable[..., NatsServer],
) -> None:
    server = nats_factory()
    async with nodes(server.url, 2, reconnect_seconds=0.2) as (a, b):
        there = Heard()
        b.subscribe(there)
        a.publish(batch(1, 1))
        assert await there.next() == Committed.pointer(1, 1, 1)
        server.restart()
        async with asyncio.timeout(WAIT_S):
            await a.wait_connections(2)
            await b.wait_connections(2)
        for seq in range(2, 12):
            a.publish(batch(1, seq))
        got = [await there.next() for _ in range(2, 12)]
        # Anything published in the outage may be lost; after it every one arrives, in order.
        tail = [p for p in got if isinstance(p, Committed) and p.first_seq >= 2]
        assert tail == [Committed.pointer(1, seq, seq) for seq in range(2, 12)]


async def test_garbage_on_the_subject_is_dropped_without_stopping_the_node(
    nats_url: str,
) -> None:
    async with nodes(nats_url, 1) as (b,):
        there = Heard()
        b.subscribe(there)
        rogue = Client()
        await rogue.connect(nats_url, allow_reconnect=False)
        try:
            garbage = [b"", b"\xc1", b"\x93\x01\xa1n", b"not msgpack at all", b"\x92" * 50]
            for data in garbage:
                await rogue.publish(b.subject, data)
            valid = encode(ReadMarker(3, ReadState(2, 1, 0)), "rogue-but-well-formed")
            assert valid is not None
            await rogue.publish(b.subject, valid)  # same connection: it arrives last
            assert await there.next() == ReadMarker(3, ReadState(2, 1, 0))
            assert b.malformed == len(garbage) and there.items == [there.items[0]]
        finally:
            await rogue.close()


async def test_a_full_queue_drops_the_oldest_and_sends_the_newest(nats_url: str) -> None:
    async with nodes(nats_url, 1) as (b,):
        there = Heard()
        b.subscribe(there)
        here = Heard()
        a = NatsBroker(nats_url, "node-late", subject=b.subject, queue_limit=3)
        a.subscribe(here)
        for seq in range(1, 6):  # not started: NATS is "away"
            a.publish(batch(7, seq))
        assert a.dropped == 2 and len(here.items) == 5  # local delivery never waits
        await a.start()
        try:
            got = [await there.next() for _ in range(3)]
            assert got == [Committed.pointer(7, seq, seq) for seq in (3, 4, 5)]
        finally:
            await a.stop()


async def test_start_fails_loudly_when_nats_does_not_answer() -> None:
    broker = NatsBroker(f"nats://127.0.0.1:{free_port('127.0.0.1')}", "n", connect_seconds=1)
    with pytest.raises(BrokerUnavailable) as caught:
        await asyncio.wait_for(broker.start(), WAIT_S)
    assert "did not answer within 1 seconds" in caught.value.message
    await broker.stop()  # harmless after a failed start


async def test_what_is_published_just_before_stop_still_leaves(nats_url: str) -> None:
    """An admin command publishes and exits at once: stop() sends the queue first."""
    async with nodes(nats_url, 1) as (b,):
        there = Heard()
        b.subscribe(there)
        command = NatsBroker(nats_url, "admin-command", subject=b.subject)
        await command.start()
        ends = [EndSessions(SessionEnd.USER_DISABLED, user_id=user) for user in range(1, 30)]
        for end in ends:
            command.publish(end)
        await command.stop()
        assert command.sent == len(ends)
        assert [await there.next() for _ in ends] == ends


async def test_an_admin_command_goes_on_when_nats_does_not_answer() -> None:
    """Disabling an account must work while NATS is down (the server's sweep closes)."""
    broker = NatsBroker(
        f"nats://127.0.0.1:{free_port('127.0.0.1')}", "cmd", connect_seconds=1, required=False
    )
    here = Heard()
    broker.subscribe(here)
    await asyncio.wait_for(broker.start(), WAIT_S)
    broker.publish(EndSessions(SessionEnd.USER_DISABLED, user_id=4))
    assert here.items == [EndSessions(SessionEnd.USER_DISABLED, user_id=4)]
    await asyncio.wait_for(broker.stop(), WAIT_S)
    assert broker.sent == 0 and not broker.ready
