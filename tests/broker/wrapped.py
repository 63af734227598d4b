"""A test broker that changes what is published and hands the rest to the in-memory broker."""

from __future__ import annotations

from collections.abc import Callable

from chatd.broker.base import Publication, Receiver
from chatd.broker.memory import MemoryBroker


class WrappedBroker:
    """Subclasses override :meth:`publish` (dropping, repeating, reducing publications) and
    pass what they keep to ``self._inner``."""

    def __init__(self) -> None:
        self._inner = MemoryBroker()

    def publish(self, publication: Publication) -> None:
        self._inner.publish(publication)

    def health(self) -> str:
        return self._inner.health()

    def subscribe(self, receiver: Receiver) -> Callable[[], None]:
        return self._inner.subscribe(receiver)

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()
