"""Uploads, downloads and the sweeper of attachments: between the HTTP routes and the store.

An upload, in order (design §6–§7; each step is what makes the next one safe):

1. the request body is spooled to ``ROOT/spool/`` by :func:`~.spool.spool_limited`, which stops
   reading at ``max_bytes + 1`` (HTTP 413) — the whole body is never held in memory;
2. :func:`~.ingest.ingest` decides the type from the content, re-encodes images (metadata
   gone, thumbnail made) and sanitises the name — in a worker thread (a 12 MP photo takes
   ~0.8 s), at most :data:`INGEST_CONCURRENCY` at a time;
3. the result is sealed under a fresh data key into the blob store under a fresh random id,
   atomically (temporary file, fsync, rename), and the spooled file is removed;
4. only then is the row recorded (the key wrapped by the KEK, name and thumbnail sealed).

A crash before 4 leaves at most a file without a row, which ``chatd verify`` removes; never a
row without its file.  An upload not sent in a message within ``CHATD_ATTACHMENT_TTL_SECONDS``
is discarded by the sweeper (every ``CHATD_ATTACHMENT_SWEEP_SECONDS``), which also removes
spooled and temporary files older than an hour; at start-up all of those are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterable, Callable
from pathlib import Path

from chatd.attachments.blobstore import BlobStore
from chatd.attachments.images import ImageLimits
from chatd.attachments.ingest import IngestedFile, ingest
from chatd.attachments.spool import spool_limited
from chatd.config import Settings
from chatd.core.errors import StoreClosedError
from chatd.core.records import AttachmentAccess, AttachmentInfo, NewAttachment
from chatd.crypto.attachment_keys import new_attachment_id
from chatd.crypto.envelope import new_data_key
from chatd.store.abstract import Store

log = logging.getLogger("chatd.attachments")
INGEST_CONCURRENCY = 4  # images are decoded in memory: bound how many at once
TEMP_GRACE_SECONDS = 3600  # spooled/temporary files older than this are left-overs


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class AttachmentService:
    def __init__(
        self,
        store: Store,
        *,
        max_bytes: int,
        ttl_seconds: int,
        sweep_seconds: int,
        image_limits: ImageLimits | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.store = store
        self.blobs: BlobStore = store.blobs
        self.max_bytes = max_bytes
        self.ttl_ms = ttl_seconds * 1000
        self.sweep_seconds = sweep_seconds
        self.image_limits = image_limits or ImageLimits()
        self._clock_ms = clock_ms
        self._ingesting = asyncio.Semaphore(INGEST_CONCURRENCY)
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> AttachmentService:
        return cls(
            store,
            max_bytes=settings.max_attachment_bytes,
            ttl_seconds=settings.attachment_ttl_seconds,
            sweep_seconds=settings.attachment_sweep_seconds,
            image_limits=ImageLimits(max_pixels=settings.max_image_pixels),
        )

    # ------------------------------------------------------------------ upload

    async def upload(
        self, uploader: int, body: AsyncIterable[bytes], original_name: str
    ) -> AttachmentInfo:
        """Spool, check, clean, seal and record one upload (see the module docstring).

        Raises the ClientError that refuses the file (``attachment_too_large``,
        ``unsupported_file_type``, ``corrupt_file``, ``image_too_large``).
        """
        spool = await asyncio.to_thread(self.blobs.spool_path)
        try:
            await spool_limited(body, spool, self.max_bytes)
            async with self._ingesting:
                ingested = await asyncio.to_thread(
                    ingest,
                    spool,
                    original_name,
                    max_bytes=self.max_bytes,
                    image_limits=self.image_limits,
                )
                attachment_id, dek = await asyncio.to_thread(self._seal, ingested)
        finally:
            await asyncio.to_thread(_remove, spool)
        new = NewAttachment(
            id=attachment_id,
            uploader=uploader,
            kind=ingested.kind.value,
            mime=ingested.mime,
            size=ingested.size,
            name=ingested.name,
            dek=dek,
            ttl_ms=self.ttl_ms,
            width=ingested.width,
            height=ingested.height,
            thumbnail=ingested.thumbnail,
        )
        try:
            # Shielded: if the client goes away now, the row is still recorded (or not) as a
            # whole, and its file is never removed from under it.
            return await asyncio.shield(self.store.record_attachment(new))
        except Exception:
            # Definitely not recorded: the file is an orphan, remove it now.
            await asyncio.to_thread(self.blobs.delete, attachment_id)
            raise

    def _seal(self, ingested: IngestedFile) -> tuple[int, bytes]:
        dek = new_data_key()
        while True:
            attachment_id = new_attachment_id()
            try:
                self.blobs.write(attachment_id, dek, ingested.content)
            except FileExistsError:  # 2**-63 per existing file; pick another id
                continue
            return attachment_id, dek

    # ------------------------------------------------------------------ download

    async def find(
        self, user_id: int, attachment_id: int, *, thumbnail: bool = False
    ) -> AttachmentAccess:
        """The attachment if ``user_id`` may see it (see :meth:`Store.attachment_for_user`)."""
        return await self.store.attachment_for_user(user_id, attachment_id, thumbnail=thumbnail)

    # ------------------------------------------------------------------ sweeping

    async def sweep(self, now_ms: int | None = None) -> list[int]:
        """Discard expired uploads; remove spooled and temporary files left over."""
        now = self._clock_ms() if now_ms is None else now_ms
        swept = await self.store.sweep_attachments(now)
        await asyncio.to_thread(self.blobs.sweep_temp_files, older_than=TEMP_GRACE_SECONDS)
        if swept:
            log.info("discarded %d unsent attachments", len(swept))
        return swept

    async def start(self) -> None:
        # At start-up nothing is in flight: every spooled or temporary file is a left-over.
        removed = await asyncio.to_thread(self.blobs.sweep_temp_files)
        if removed:
            log.info("removed %d unfinished upload files", len(removed))
        if self.sweep_seconds:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="chatd-attachment-sweeper"
            )

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except StoreClosedError:
                return
            except Exception as exc:  # keep sweeping later; never log content
                log.error("attachment sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(self.sweep_seconds)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
