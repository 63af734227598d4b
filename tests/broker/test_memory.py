"""The in-memory broker: every receiver hears every publication, in order, synchronously."""

from __future__ import annotations

from chatd.broker.base import Committed, EndSessions, Publication, ReadMarker, SessionEnd
from chatd.broker.memory import MemoryBroker
from chatd.core.records import ReadState


def test_publications_reach_every_receiver_in_order_until_it_unsubscribes() -> None:
    broker = MemoryBroker()
    heard_a: list[Publication] = []
    heard_b: list[Publication] = []
    stop_a = broker.subscribe(heard_a.append)
    broker.subscribe(heard_b.append)
    first = Committed(1, ())
    second = ReadMarker(7, ReadState(1, 3, 0), origin="n.1")
    broker.publish(first)
    broker.publish(second)
    stop_a()
    stop_a()  # twice is harmless
    third = EndSessions(SessionEnd.USER_DISABLED, user_id=7)
    broker.publish(third)
    assert heard_a == [first, second]
    assert heard_b == [first, second, third]
    assert broker.published == 3


def test_a_failing_receiver_does_not_starve_the_others() -> None:
    broker = MemoryBroker()
    heard: list[Publication] = []

    def broken(_: Publication) -> None:
        raise RuntimeError("boom")

    broker.subscribe(broken)
    broker.subscribe(heard.append)
    broker.publish(Committed(2, ()))
    assert heard == [Committed(2, ())]


async def test_stop_forgets_every_receiver() -> None:
    broker = MemoryBroker()
    heard: list[Publication] = []
    broker.subscribe(heard.append)
    await broker.start()
    await broker.stop()
    broker.publish(Committed(3, ()))
    assert heard == []
