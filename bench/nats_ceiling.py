"""The NATS hop alone: publish→receive latency through one nats-server at an offered rate.

A ceiling for :mod:`bench.cluster_bench`: between two chatd nodes, a message crosses NATS as
a pointer (``docs/architecture.md``, "What rides on NATS"), so a raw publish on one connection
and its receipt on another, through the same nats-server on the same machine, is the part of
the cross-node delay that no change to chatd can remove.  One process, one event loop
(uvloop), two client connections (as two nodes would have): the publish time and the receipt
time are two readings of one monotonic clock.  The payload is the size of chatd's pointer
message.  Open loop, as the cluster runs: messages go out on schedule whatever comes back.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field

import nats
import uvloop
from nats.aio.msg import Msg

SUBJECT = "bench.ceiling"
PAYLOAD_BYTES = 48  # about a msgpack [version, node id, kind, conv, first seq, last seq]
DRAIN_TIMEOUT = 10.0
_NUMBER = struct.Struct("!Q")


@dataclass
class NatsRoundTrip:
    rate: float
    sent: int = 0
    received: int = 0  # distinct messages received
    duplicates: int = 0
    stray: int = 0
    ms: list[float] = field(default_factory=list)  # publish→receive, messages of the window

    @property
    def missing(self) -> int:
        return self.sent - self.received


async def _round_trip(url: str, rate: float, warmup: float, duration: float) -> NatsRoundTrip:
    result = NatsRoundTrip(rate)
    total = int(rate * (warmup + duration))
    sent_at = [0.0] * total
    seen = bytearray(total)
    all_in = asyncio.Event()
    window: tuple[float, float] = (0.0, 0.0)

    async def on_message(msg: Msg) -> None:
        now = time.monotonic()
        (number,) = _NUMBER.unpack_from(msg.data)
        if number >= result.sent:
            result.stray += 1
            return
        if seen[number]:
            result.duplicates += 1
            return
        seen[number] = 1
        result.received += 1
        if window[0] <= sent_at[number] < window[1]:
            result.ms.append((now - sent_at[number]) * 1000)
        if result.received == total:
            all_in.set()

    publisher = await nats.connect(url)
    subscriber = await nats.connect(url)
    try:
        await subscriber.subscribe(SUBJECT, cb=on_message)
        await subscriber.flush()  # the subscription is on the server before the first publish
        padding = bytes(PAYLOAD_BYTES - _NUMBER.size)
        interval = 1.0 / rate
        go_at = time.monotonic() + 0.1
        window = (go_at + warmup, go_at + warmup + duration)
        while result.sent < total:  # late sends go out at once, as in the load generator
            due = go_at + result.sent * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[result.sent] = time.monotonic()
            await publisher.publish(SUBJECT, _NUMBER.pack(result.sent) + padding)
            result.sent += 1
        await publisher.flush()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await all_in.wait()
        except TimeoutError:
            pass  # counted as missing
    finally:
        await publisher.close()
        await subscriber.close()
    return result


def nats_round_trip(url: str, rate: float, warmup: float, duration: float) -> NatsRoundTrip:
    """Publish ``rate`` messages/s for ``warmup + duration`` seconds; the latencies of those
    sent in the window, and the count of every message received (once, twice, never)."""
    return uvloop.run(_round_trip(url, rate, warmup, duration))
