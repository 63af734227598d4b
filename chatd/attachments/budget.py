"""A memory budget for decoding images: a semaphore weighted by declared pixels.

Decoding holds about 8 bytes per pixel at its peak (the decoded image and one working copy),
so the memory the server spends on images is bounded by bounding the pixels being decoded
at once, whatever the size of the files on the wire: a 160 KiB PNG may declare 49
megapixels.  Each decode holds its image's declared pixels (read from the header, before
anything is decoded) for as long as it runs.

Waiters are served **in order**: a large image at the head of the queue is not overtaken
by a stream of small ones (it would starve), and waits until enough has been released.  A
weight larger than the whole budget could never be served: the caller refuses that image
before asking (:meth:`PixelBudget.fits`).  A waiter that is cancelled leaves the queue; if
it was granted at the same moment, what it was granted is released.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PixelBudget:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the budget must be positive")
        self.capacity = capacity
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def fits(self, weight: int) -> bool:
        """Whether ``weight`` can ever be granted."""
        return 0 <= weight <= self.capacity

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, weight: int) -> None:
        if not self.fits(weight):
            raise ValueError(f"weight {weight} exceeds the budget {self.capacity}")
        if not self._waiters and self.in_use + weight <= self.capacity:
            self.in_use += weight
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (weight, granted)
        self._waiters.append(entry)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(weight)  # granted as we were cancelled: give it back
            else:
                with contextlib.suppress(ValueError):  # _grant may have dropped it already
                    self._waiters.remove(entry)
                self._grant()  # the head may have changed
            raise

    def release(self, weight: int) -> None:
        if weight > self.in_use:
            raise ValueError("released more than was held")
        self.in_use -= weight
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.in_use + self._waiters[0][0] <= self.capacity:
            weight, granted = self._waiters.popleft()
            if granted.done():  # cancelled, its task not yet resumed: not granted
                continue
            self.in_use += weight
            granted.set_result(None)

    @asynccontextmanager
    async def hold(self, weight: int) -> AsyncIterator[None]:
        await self.acquire(weight)
        try:
            yield
        finally:
            self.release(weight)
