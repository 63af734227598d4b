"""The broker between nodes, on NATS (nats-py): what one node publishes reaches every node.

- **Local first.** :meth:`NatsBroker.publish` never waits (the Broker protocol): this node's
  receivers get the full publication at once, in process, as with
  :class:`~chatd.broker.memory.MemoryBroker`.  The network copy (:mod:`chatd.broker.wire`:
  a committed batch is a pointer, never content) is queued; one sender task sends the queue
  in order.
- **Bounded.** While NATS is away the queue keeps the newest ``queue_limit`` messages and
  drops the oldest, with a warning and a counter.  Nothing depends on them: sessions fill a
  gap from the store when the next event shows it, a client that resumes gets everything,
  and the revocation sweep closes revoked sessions within a second.
- **One subject.** Every node subscribes to one subject, ignores its own node's messages
  (already delivered locally), and hands the others to its receivers in the order NATS
  delivers them.  A malformed message is counted, logged without its content, and dropped.
- **Reconnects forever** (nats-py's own reconnection), but :meth:`start` fails loudly
  (:class:`~chatd.core.errors.BrokerUnavailable`) if the first connection is not made within
  ``connect_seconds``: a node that starts deaf to the others would be a silent
  misconfiguration.  An admin command (``required=False``) goes on without it.
  :meth:`stop` sends what is queued (bounded) and drains the connection, so that an admin
  command's publication leaves before the process exits.

The subscription is proven with a probe (a message to a subject of our own that must come
back), not with ``flush()``: nats-py writes flush's PING ahead of a SUB still in its buffer
(tests/servers/test_servers.py).  The probe runs after the first connection and after every
reconnection; :attr:`NatsBroker.connections` counts the proven ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from nats.aio.client import Client
from nats.aio.msg import Msg

from chatd.broker.base import Publication, Receiver
from chatd.broker.memory import MemoryBroker
from chatd.broker.wire import WireError, decode, encode
from chatd.core.errors import BrokerUnavailable
from chatd.i18n import N_

log = logging.getLogger("chatd.broker.nats")

SUBJECT = "chatd.default.pub"
QUEUE_LIMIT = 100_000
NO_ANSWER = N_("The broker at {address} did not answer within {seconds} seconds.")


class NatsBroker:
    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        subject: str = SUBJECT,
        queue_limit: int = QUEUE_LIMIT,
        connect_seconds: float = 5.0,
        reconnect_seconds: float = 1.0,
        drain_seconds: float = 5.0,
        required: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self._tls = tls  # for a tls:// URL (chatd.broker.tls); None: Python's default
        self.node_id = node_id
        self.subject = subject
        self._limit = queue_limit
        self._connect_seconds = connect_seconds
        self._reconnect_seconds = reconnect_seconds
        self._drain_seconds = drain_seconds
        self._required = required
        self._local = MemoryBroker()
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # the queue is empty: what stop() waits for
        self._idle.set()
        self._ready = asyncio.Event()  # connected and subscribed (a probe came back)
        self._changed = asyncio.Condition()
        self._client: Client | None = None
        self._sender: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        # Counters, for metrics and tests.
        self.connections = 0
        self.sent = 0
        self.dropped = 0
        self.received = 0
        self.malformed = 0

    # ------------------------------------------------------------------ the Broker protocol

    def publish(self, publication: Publication) -> None:
        self._local.publish(publication)
        data = encode(publication, self.node_id)
        if data is None:
            return
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "broker queue full (NATS away?): %d publications dropped so far, the "
                    "store fills the gaps",
                    self.dropped,
                )
        self._queue.append(data)
        self._idle.clear()
        self._wake.set()

    def subscribe(self, receiver: Receiver) -> Callable[[], None]:
        return self._local.subscribe(receiver)

    async def start(self) -> None:
        client = Client()
        self._client = client
        try:
            async with asyncio.timeout(self._connect_seconds):
                await client.connect(
                    self.url,
                    name=f"chatd-{self.node_id}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # forever: NATS coming back is the normal case
                    reconnect_time_wait=self._reconnect_seconds,  # type: ignore[arg-type]
                    connect_timeout=max(1, int(self._connect_seconds)),
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    tls=self._tls,
                )
                await client.subscribe(self.subject, cb=self._on_message)
                await self._probe(client)
        except (Exception, TimeoutError) as exc:
            log.error("broker at %s unavailable: %s", _address(self.url), type(exc).__name__)
            with contextlib.suppress(Exception):
                await client.close()
            self._client = None
            if not self._required:  # an admin command: its publications stay in the process
                return
            raise BrokerUnavailable(
                NO_ANSWER, address=_address(self.url), seconds=self._connect_seconds
            ) from None
        await self._proven()
        self._sender = asyncio.get_running_loop().create_task(
            self._send(), name="chatd-broker-sender"
        )

    async def stop(self) -> None:
        client = self._client
        if client is not None and client.is_connected and self._queue:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._drain_seconds):
                    await self._idle.wait()
        self._client = None
        for task in (self._sender, self._prober):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._sender = self._prober = None
        if client is not None:
            try:
                if client.is_connected:
                    await client.drain()  # sends what nats-py still buffers, then closes
                else:
                    await client.close()
            except Exception as exc:
                log.warning("broker connection did not close cleanly: %s", type(exc).__name__)
        if self._queue:
            log.warning("broker stopped with %d publications unsent", len(self._queue))
        await self._local.stop()

    # ------------------------------------------------------------------ for tests and health

    @property
    def ready(self) -> bool:
        """Connected, and our subscription is known to the server."""
        return self._ready.is_set()

    def health(self) -> str:
        client = self._client
        return "ok" if self.ready and client is not None and client.is_connected else "down"

    async def wait_connections(self, count: int) -> None:
        """Until ``count`` connections (the first and the reconnections) have been proven."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.connections >= count)

    # ------------------------------------------------------------------ the network side

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._ready.wait()
                client = self._client
                if client is None:
                    return
                try:
                    await client.publish(self.subject, self._queue[0])
                except Exception as exc:  # the connection went away under us: try again
                    log.warning("broker send failed: %s", type(exc).__name__)
                    await asyncio.sleep(self._reconnect_seconds)  # a pause, not a sync
                    continue
                self._queue.popleft()
                self.sent += 1
            self._idle.set()

    async def _on_message(self, msg: Msg) -> None:
        try:
            received = decode(msg.data)
        except WireError as exc:  # never its content: the reason is a fixed sentence
            self.malformed += 1
            log.warning("dropped a malformed broker message (%d bytes): %s", len(msg.data), exc)
            return
        if received.node_id == self.node_id:
            return  # delivered locally when it was published
        self.received += 1
        self._local.publish(received.publication)

    async def _probe(self, client: Client) -> None:
        """A message to a subject of our own comes back: every SUB before it is in place."""
        subject = f"_chatd_probe.{uuid.uuid4().hex}"
        back: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def came_back(_: Msg) -> None:
            if not back.done():
                back.set_result(None)

        sub = await client.subscribe(subject, cb=came_back)
        try:
            await client.publish(subject, b"")
            async with asyncio.timeout(self._connect_seconds):
                await back
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _proven(self) -> None:
        self._ready.set()
        async with self._changed:
            self.connections += 1
            self._changed.notify_all()

    async def _reprobe(self) -> None:
        while (client := self._client) is not None and client.is_connected:
            try:
                await self._probe(client)
            except Exception as exc:  # timed out, or lost again: the next reconnection retries
                log.warning("broker probe after reconnection failed: %s", type(exc).__name__)
                continue
            log.warning("broker reconnected to %s", _address(self.url))
            await self._proven()
            return

    async def _on_disconnected(self) -> None:
        if self._ready.is_set() and self._client is not None:  # not stop()'s own closing
            log.warning("broker disconnected from %s", _address(self.url))
        self._ready.clear()

    async def _on_reconnected(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
        self._prober = asyncio.get_running_loop().create_task(
            self._reprobe(), name="chatd-broker-probe"
        )

    async def _on_error(self, exc: Exception) -> None:
        # nats-py's default logs a traceback; one line without it says as much.
        log.warning("broker: %s", type(exc).__name__)


def _address(url: str) -> str:
    """host:port of a broker URL, never its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.hostname else "?"
