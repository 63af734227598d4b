"""The one-node broker: publications go, synchronously and in order, to this process's
receivers.

A process that is not the server (the ``chatd`` admin command) publishes into an empty
broker: nobody hears it, and the running server's revocation sweep closes the sessions of a
disabled account within a second.  A network broker (NATS, the cluster issue) is what lets
such a publication reach every node at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chatd.broker.base import Publication, Receiver

log = logging.getLogger("chatd.broker")


class MemoryBroker:
    def __init__(self) -> None:
        self._receivers: list[Receiver] = []
        self.published = 0  # for metrics and tests

    def publish(self, publication: Publication) -> None:
        self.published += 1
        for receiver in tuple(self._receivers):
            try:
                receiver(publication)
            except Exception as exc:  # one receiver's fault must not starve the others
                log.error("broker receiver failed: %s", type(exc).__name__)

    def subscribe(self, receiver: Receiver) -> Callable[[], None]:
        self._receivers.append(receiver)

        def unsubscribe() -> None:
            if receiver in self._receivers:
                self._receivers.remove(receiver)

        return unsubscribe

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._receivers.clear()

    def health(self) -> str:
        return "local"
