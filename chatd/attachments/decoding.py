"""Images are decoded in worker processes, one per image, under a memory budget.

Why processes: decoding a 160 KiB PNG that declares 7000 × 7000 pixels holds hundreds of MiB,
and a process that has held them keeps most of them (the allocator does not give them back);
eight such uploads once took the server to 1.95 GiB and left it there.  A decoder bug in C
(libpng, libjpeg, libwebp, libheif) could also take the whole server down.  So each image is
decoded by a process of its own that exits when it is done: its memory goes back to the
system, and its crash — a segfault, the kernel's out-of-memory killer — fails that upload
alone (``image_processing_failed``) while the server goes on.

Why ``forkserver``: the server runs threads (the event loop's, SQLite's, the default
executor's); forking it could copy a lock held by another thread into the child, and would
copy its secrets.  The fork server is a fresh interpreter started once (at
:meth:`ImageDecoders.start`, fork + exec), with the image modules preloaded; every worker is
forked from it, cheaply, and holds nothing of the server.  It exits with the server.

How one image goes (:mod:`.decoder_worker` for the worker's side):

1. wait for a worker slot (``CHATD_IMAGE_WORKERS`` processes at most), start the worker;
2. it reads the header and answers the declared size, or a refusal;
3. an image heavier than the whole budget is refused (``image_too_large``); else wait until
   the budget (``CHATD_IMAGE_DECODE_PIXELS``, :mod:`.budget`) has room for it, then tell
   the worker to decode;
4. it answers the re-encoded image (or a refusal) and exits; the budget and the slot are
   released, the process reaped.  Whatever goes wrong, or if the upload is cancelled, the
   worker is killed and reaped: none outlives its upload.

At :meth:`ImageDecoders.stop` (the server stopping), running workers are killed and their
uploads answered ``unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import signal
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TypeVar

from chatd.attachments.budget import PixelBudget
from chatd.attachments.decoder_worker import GO, Refusal, Unexpected, decode_one
from chatd.attachments.images import (
    ImageHeader,
    ImageLimits,
    ProcessedImage,
    too_long_animation,
    too_many_pixels,
)
from chatd.attachments.kinds import FileKind
from chatd.core.errors import ImageProcessingFailed, ImageTooLarge, UnavailableError
from chatd.i18n import N_

log = logging.getLogger("chatd.attachments.decoding")

PRELOAD = ["chatd.attachments.decoder_worker"]  # imported once, in the fork server
REAP_SECONDS = 10.0
T = TypeVar("T")


def _context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, multiprocessing.context.ForkServerContext)
    return context


class WorkerGone(Exception):
    """The worker ended (or its pipe closed) before answering."""


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.killed = False  # by us: not worth a warning
        self.gone = False  # it closed the pipe before answering: ending by itself

    @classmethod
    def start(cls, path: Path, kind: FileKind, limits: ImageLimits) -> _Worker:
        """Fork a worker from the fork server (blocking: a few milliseconds).  A fork server
        that died (killed, out of memory) is started again, once."""
        for attempt in (1, 2):
            try:
                return cls._start(path, kind, limits)
            except (EOFError, OSError) as exc:
                # The fork server's pipe closed under us; the next attempt finds it dead
                # (ensure_running reaps it) and starts a new one.
                log.warning("could not start an image worker (%s)", type(exc).__name__)
                if attempt == 2:
                    raise ImageProcessingFailed() from None
        raise AssertionError("unreachable")

    @classmethod
    def _start(cls, path: Path, kind: FileKind, limits: ImageLimits) -> _Worker:
        context = _context()
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=decode_one, args=(theirs, str(path), kind, limits), name="chatd-image"
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(process, ours)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def receive(self) -> object:
        """The worker's next message, blocking until it comes; WorkerGone if the worker ended
        or closed the pipe first.  (Waited for in a thread: an event loop's reader would put
        the pipe in non-blocking mode, which ``recv`` does not expect.)"""
        wait([self.conn, self.process.sentinel])
        try:
            if self.conn.poll():
                return self.conn.recv()  # the worker is writing it: a large image takes a moment
        except (EOFError, OSError):  # the end of the pipe: the worker is gone
            pass
        self.gone = True
        raise WorkerGone()

    def send(self, message: object) -> None:
        try:
            self.conn.send(message)
        except OSError as exc:
            raise WorkerGone() from exc

    def kill(self) -> None:
        if self.process.exitcode is None:
            self.killed = True
            with contextlib.suppress(OSError, ValueError):
                self.process.kill()

    async def reap(self) -> int | None:
        """Kill it if it still runs, wait for its end and release its resources.  A worker
        that closed the pipe by dying is only waited for: its exit status (which signal) may
        not have been reported yet, and a kill now would hide it."""
        if not self.gone:
            self.kill()
        self.conn.close()
        await asyncio.to_thread(self.process.join, REAP_SECONDS)
        if self.process.exitcode is None:  # still there after all: no more waiting
            self.kill()
            await asyncio.to_thread(self.process.join, REAP_SECONDS)
        code = self.process.exitcode
        if code is not None:
            self.process.close()
        return code


class ImageDecoders:
    """Decodes images in worker processes (see the module docstring)."""

    def __init__(self, *, workers: int, budget_pixels: int) -> None:
        self.budget = PixelBudget(budget_pixels)
        self.workers = workers
        self._slots = asyncio.Semaphore(workers)
        # One thread per worker slot waits for its worker's answers.
        self._listeners = ThreadPoolExecutor(workers, thread_name_prefix="chatd-image")
        self._running: set[_Worker] = set()
        self._none_running = asyncio.Event()
        self._none_running.set()
        self._stopping = False

    def start(self) -> None:
        """Start the fork server now, not on the first upload (blocking: about 0.5 s)."""
        self._stopping = False
        context = _context()
        context.set_forkserver_preload(PRELOAD)
        multiprocessing.forkserver.ensure_running()

    def running_pids(self) -> list[int]:
        return [w.pid for w in self._running if w.pid is not None]

    async def process(self, path: Path, kind: FileKind, limits: ImageLimits) -> ProcessedImage:
        """Probe, reserve, decode and re-encode the image spooled at ``path``.

        Raises the ClientError refusing it (``image_too_large``, ``corrupt_file`` …),
        ImageProcessingFailed if its worker died, UnavailableError if the server stops."""
        async with self._slots:
            self._check_running()
            worker = await asyncio.to_thread(_Worker.start, path, kind, limits)
            self._running.add(worker)
            self._none_running.clear()
            try:
                header = _expect(await self._receive(worker), ImageHeader)
                if not self.budget.fits(header.weight):
                    raise _over_budget(header, self.budget.capacity)
                async with self.budget.hold(header.weight):
                    self._check_running()
                    worker.send(GO)
                    return _expect(await self._receive(worker), ProcessedImage)
            finally:
                try:
                    await self._reap(worker)
                finally:
                    self._running.discard(worker)
                    if not self._running:
                        self._none_running.set()

    def halt(self) -> None:
        """The server begins to stop: kill the running workers now, so that the uploads
        waiting for them are answered (``unavailable``) instead of holding the shutdown up;
        refuse new ones.  Safe to call from a signal handler (no await, no lock)."""
        self._stopping = True
        for worker in list(self._running):
            worker.kill()

    async def stop(self) -> None:
        """:meth:`halt`, then wait (bounded) until every upload reaped its worker."""
        self.halt()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_running.wait(), REAP_SECONDS)
        self._listeners.shutdown(wait=False)

    def _check_running(self) -> None:
        if self._stopping:
            raise UnavailableError(N_("The server is stopping; send the file again shortly."))

    async def _receive(self, worker: _Worker) -> object:
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._listeners, worker.receive)
        except WorkerGone:
            self._check_running()
            raise ImageProcessingFailed() from None

    async def _reap(self, worker: _Worker) -> None:
        pid = worker.pid
        code = await worker.reap()
        if code is not None and code < 0 and not worker.killed:
            # Never the file's name or content: the pid and the signal say enough.
            log.warning(
                "image worker %s was ended by %s before answering; its upload was refused",
                pid,
                _signal_name(-code),
            )


def _expect(message: object, kind: type[T]) -> T:
    if isinstance(message, kind):
        return message
    if isinstance(message, Refusal):
        raise message.rebuild()
    if isinstance(message, Unexpected):
        log.warning("an image worker failed (%s); its upload was refused", message.kind)
    raise ImageProcessingFailed()


def _over_budget(header: ImageHeader, capacity: int) -> ImageTooLarge:
    if header.animated:
        return too_long_animation()
    return too_many_pixels(header.width, header.height, capacity)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
