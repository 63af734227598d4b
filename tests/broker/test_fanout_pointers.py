"""A committed batch that arrives as a pointer (from another node: no content) is filled from
the store by the fan-out and pushed live, exactly as a local batch would be."""

from __future__ import annotations

from pathlib import Path

from chatd.broker.base import Committed, Publication
from tests.broker.wrapped import WrappedBroker
from tests.gateway.client import WsClient
from tests.gateway.inprocess import serving


class PointerBroker(WrappedBroker):
    """The in-memory broker as a remote node sees it: every committed batch is reduced to the
    pointer the wire carries, so no event reaches the fan-out except through the store."""

    def __init__(self) -> None:
        super().__init__()
        self.pointers: list[Committed] = []

    def publish(self, publication: Publication) -> None:
        if isinstance(publication, Committed) and publication.span is not None:
            publication = Committed.pointer(publication.conv_id, *publication.span)
            self.pointers.append(publication)
        self._inner.publish(publication)


async def test_pointers_are_filled_from_the_store_and_pushed_to_their_audience(
    tmp_path: Path,
) -> None:
    broker = PointerBroker()
    async with serving(tmp_path, broker) as server:
        (anne, anne_token), (bruno, bruno_token), (chloe, chloe_token) = [
            await server.user(name) for name in ("Anne", "Bruno", "Chloé")
        ]
        a = await WsClient.open(server.ws_url, anne_token)
        b = await WsClient.open(server.ws_url, bruno_token)
        c = await WsClient.open(server.ws_url, chloe_token)  # not a member: hears nothing
        try:
            for device in (a, b, c):
                await device.sync()
            conv = await a.create([bruno], "Pointeurs")
            texts = [f"message {i}" for i in range(12)]
            for text in texts:
                await (a if len(text) % 2 else b).send(conv, text)
            last = 2 + len(texts)
            for device in (a, b):
                await device.wait_seq(conv, last)
                await device.flush()
                assert device.seqs(conv) == list(range(1, last + 1))  # once each, in order
                said = [e["text"] for e in device.events(conv) if e["kind"] == "message"]
                assert said[-len(texts) :] == texts  # the content came from the store
            await c.flush()
            assert c.events() == [] and chloe not in (anne, bruno)
            assert broker.pointers and all(not p.events for p in broker.pointers)
        finally:
            for device in (a, b, c):
                await device.close()
