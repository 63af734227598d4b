"""Attachments as a use case: uploads, downloads, the sweeper, deleting files, the file audit.

The service owns the attachment files (a :class:`~chatd.attachments.blobstore.BlobStore`); the
store owns their rows and never touches a file.  So the service writes a file before it asks
the store to record the row, and removes files only after the store reported which rows went
(discarded unsent uploads, attachments of shredded conversations).

An upload, in order (design §6–§7; each step is what makes the next one safe):

0. the user's upload quota (:mod:`chatd.core.upload_quota`: ``CHATD_UPLOADS_PER_MINUTE``,
   ``CHATD_UPLOAD_BYTES_PER_MINUTE``) counts the upload as it starts, or refuses it
   (``rate_limited``) before a byte is read; its buckets are the store's
   (:class:`~chatd.store.contract.UploadBudgets`), so they hold across nodes and restarts;
1. the request body is spooled to ``ROOT/spool/`` by :func:`~.spool.spool_limited`, which stops
   reading at ``max_bytes + 1`` (HTTP 413) — the whole body is never held in memory; the
   quota is settled to the bytes received;
2. :func:`~.ingest.check_upload` decides the type from the content, in a worker thread (at
   most :data:`INGEST_CONCURRENCY` at a time); images are re-encoded (metadata gone,
   thumbnail made) in a worker process of their own, under a memory budget
   (:mod:`chatd.attachments.decoding`: a 12 MP photo takes ~0.8 s), and the name is
   sanitised;
3. the result is sealed under a fresh data key into the blob store under a fresh random id,
   atomically (temporary file, fsync, rename), and the spooled file is removed;
4. only then is the row recorded (the key wrapped by the KEK, name and thumbnail sealed).

A crash before 4 leaves at most a file without a row, which ``chatd verify`` removes; never a
row without its file.  An upload not sent in a message within ``CHATD_ATTACHMENT_TTL_SECONDS``
is discarded by the sweeper (every ``CHATD_ATTACHMENT_SWEEP_SECONDS``), which also removes
spooled and temporary files older than an hour; at start-up all of those are removed.

``chatd verify`` is the store's row audit plus this service's file audit (:meth:`verify`):
every live attachment's file must exist, open chunk by chunk and hold the size its row says;
files without a row (older than :data:`ORPHAN_GRACE_SECONDS`) and files of shredded
attachments are removed and reported as warnings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from chatd.attachments.blobstore import BlobStore
from chatd.attachments.decoding import ImageDecoders
from chatd.attachments.images import ImageLimits
from chatd.attachments.ingest import IngestedFile, check_upload, document_file, image_file
from chatd.attachments.spool import spool_limited
from chatd.config.sections import AttachmentSettings
from chatd.core.clock import wall_clock_ms
from chatd.core.errors import (
    AttachmentFileMissing,
    ChatdError,
    DatabaseDamaged,
    StoreClosedError,
)
from chatd.core.records import (
    AttachmentAccess,
    AttachmentInfo,
    AttachmentKey,
    NewAttachment,
    VerifyProblem,
    VerifyReport,
)
from chatd.core.upload_quota import Reservation, UploadLimits
from chatd.crypto.attachment_keys import new_attachment_id
from chatd.crypto.envelope import new_data_key
from chatd.i18n import N_, Text
from chatd.store.contract import AttachmentRows, ClusterJobs, KeyStore, UploadBudgets

__all__ = ["AttachmentService", "AttachmentStore", "FileAudit", "wall_clock_ms"]

log = logging.getLogger("chatd.attachments")
INGEST_CONCURRENCY = 4  # threads classifying and sealing files at once
DECODE_WORKERS = 4  # image decoding processes at once (CHATD_IMAGE_WORKERS)
DECODE_PIXELS = 100_000_000  # pixels decoded at once (CHATD_IMAGE_DECODE_PIXELS)
TEMP_GRACE_SECONDS = 3600  # spooled/temporary files older than this are left-overs
ORPHAN_GRACE_SECONDS = 3600  # a file without a row younger than this may be an upload in progress
MISSING_FILE = Text(N_("its file is missing"))


class AttachmentStore(AttachmentRows, KeyStore, ClusterJobs, UploadBudgets, Protocol):
    """What the service needs of the store: the attachment rows, the row audit, the
    sweep's lease, and the upload quota's buckets."""


@dataclass(frozen=True, slots=True)
class FileAudit:
    """The file half of ``chatd verify``: problems (in attachment order) and warnings."""

    problems: tuple[VerifyProblem, ...]
    warnings: tuple[Text, ...]


class AttachmentService:
    def __init__(
        self,
        store: AttachmentStore,
        *,
        blobs: BlobStore,
        max_bytes: int,
        ttl_seconds: int,
        sweep_seconds: int,
        image_limits: ImageLimits | None = None,
        decoders: ImageDecoders | None = None,
        quota: UploadLimits | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.ttl_ms = ttl_seconds * 1000
        self.sweep_seconds = sweep_seconds
        self.image_limits = image_limits or ImageLimits()
        self.decoders = decoders or ImageDecoders(
            workers=DECODE_WORKERS, budget_pixels=DECODE_PIXELS
        )
        self.quota = quota  # None: no per-user limit (the admin command, tests)
        self._clock_ms = clock_ms
        self._ingesting = asyncio.Semaphore(INGEST_CONCURRENCY)
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: AttachmentSettings, directory: Path, store: AttachmentStore
    ) -> AttachmentService:
        return cls(
            store,
            blobs=BlobStore(directory),
            max_bytes=settings.max_bytes,
            ttl_seconds=settings.ttl_seconds,
            sweep_seconds=settings.sweep_seconds,
            image_limits=ImageLimits(max_pixels=settings.max_image_pixels),
            decoders=ImageDecoders(
                workers=settings.image_workers, budget_pixels=settings.image_decode_pixels
            ),
            quota=UploadLimits(
                settings.uploads_per_minute, settings.upload_bytes_per_minute, settings.max_bytes
            ),
        )

    # ------------------------------------------------------------------ upload

    async def upload(
        self,
        uploader: int,
        body: AsyncIterable[bytes],
        original_name: str,
        *,
        declared_bytes: int | None = None,
    ) -> AttachmentInfo:
        """Count, spool, check, clean, seal and record one upload (see the module docstring).

        ``declared_bytes`` is the size the client announced (``Content-Length``), if any.
        Raises the ClientError that refuses the file (``rate_limited``,
        ``attachment_too_large``, ``unsupported_file_type``, ``corrupt_file``,
        ``image_too_large``, ``image_processing_failed``).
        """
        reservation = None
        if self.quota is not None:
            reservation = await self.store.admit_upload(
                uploader, declared_bytes, self.quota, self._clock_ms()
            )
        spool = await asyncio.to_thread(self.blobs.spool_path)
        try:
            try:
                await spool_limited(body, spool, self.max_bytes)
            finally:
                if reservation is not None:
                    await self._settle(reservation, spool)
            ingested = await self._ingest(spool, original_name)
            async with self._ingesting:
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

    async def _settle(self, reservation: Reservation, spool: Path) -> None:
        """Charge the upload what it made the server receive.  Shielded: a client gone
        away now must not leave its whole reservation spent (nor a store error hide why the
        upload failed: the next admission refills the buckets anyway)."""
        received = await asyncio.to_thread(_size, spool)
        try:
            await asyncio.shield(self.store.settle_upload(reservation, received, self._clock_ms()))
        except ChatdError as exc:
            log.warning("could not settle an upload's quota: %s", type(exc).__name__)

    async def _ingest(self, spool: Path, original_name: str) -> IngestedFile:
        async with self._ingesting:
            kind, size = await asyncio.to_thread(check_upload, spool, max_bytes=self.max_bytes)
        if not kind.is_image:
            return document_file(spool, original_name, kind, size)
        image = await self.decoders.process(spool, kind, self.image_limits)
        return image_file(image, kind, original_name)

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
        """Discard expired uploads (rows, then files); remove spooled and temporary files
        left over."""
        now = self._clock_ms() if now_ms is None else now_ms
        swept = await self.store.sweep_attachments(now)
        await self.delete_files(swept)
        await asyncio.to_thread(self.blobs.sweep_temp_files, older_than=TEMP_GRACE_SECONDS)
        if swept:
            log.info("discarded %d unsent attachments", len(swept))
        return swept

    async def delete_files(self, attachment_ids: Iterable[int]) -> int:
        """Remove the files of attachments the store discarded or shredded (after its commit:
        their keys are gone, the files are noise; verify sweeps any left by a crash)."""
        return await asyncio.to_thread(delete_files, self.blobs, list(attachment_ids))

    # ------------------------------------------------------------------ audit

    async def verify(
        self, conv_ids: Sequence[int] | None = None, *, checkpoint_log: Path | None = None
    ) -> VerifyReport:
        """The store's row audit and, without ``conv_ids``, this service's file audit, as one
        report: attachment problems in attachment order, whichever audit found them
        (``checkpoint_log``: see :meth:`chatd.store.contract.KeyStore.verify`)."""
        report = await self.store.verify(conv_ids, checkpoint_log=checkpoint_log)
        if conv_ids is not None:
            return report
        files = await self.audit_files()
        rows = [p for p in report.problems if p.attachment_id is None]
        attached = [p for p in report.problems if p.attachment_id is not None]
        attached.extend(files.problems)
        attached.sort(key=lambda p: p.attachment_id or 0)  # each has at most one problem
        return dataclasses.replace(
            report, problems=tuple(rows + attached), warnings=report.warnings + files.warnings
        )

    async def audit_files(self) -> FileAudit:
        """Open every live attachment's file chunk by chunk (a problem names the attachment
        and the first bad chunk; a missing file is a problem).  Files without a row, older
        than :data:`ORPHAN_GRACE_SECONDS`, and files of shredded attachments are removed and
        reported in ``warnings``."""
        problems: list[VerifyProblem] = []
        known: set[int] = set()
        dead: list[int] = []
        try:
            await self._audit_rows(problems, known, dead)
        except DatabaseDamaged as exc:
            # The rows cannot all be read: say so, and remove no file (a file whose row was
            # not read is no orphan).
            problems.append(VerifyProblem(0, 0, exc.text))
            return FileAudit(tuple(problems), ())
        warnings = await asyncio.to_thread(sweep_orphans, self.blobs, known, dead)
        for warning in warnings:
            log.warning("verify: %s", warning)
        return FileAudit(tuple(problems), tuple(warnings))

    async def _audit_rows(
        self, problems: list[VerifyProblem], known: set[int], dead: list[int]
    ) -> None:
        """Check the file of every row, page by page, filling the three collections."""
        missing: set[int] = set()
        after = 0
        while page := await self.store.attachment_keys(after):
            for key in page:
                known.add(key.id)
                if key.shredded:
                    dead.append(key.id)
                    continue
                if key.dek is None:
                    continue  # the row audit reports it
                problem = await self._file_problem(key, key.dek)
                if problem is not None:
                    if problem == MISSING_FILE:
                        missing.add(key.id)
                    problems.append(
                        VerifyProblem.of_attachment(key.id, key.conv_id, key.seq, problem)
                    )
            after = page[-1].id
        if missing:
            # A file removed after its page was read, with its row (discarded) or key
            # (shredded) by a server running meanwhile, is not a problem: keep what stands.
            live = await self.store.live_attachments(sorted(missing))
            problems[:] = [p for p in problems if p.attachment_id not in missing - live]

    async def _file_problem(self, key: AttachmentKey, dek: bytes) -> Text | None:
        try:
            return await asyncio.to_thread(_check_file, self.blobs, key.id, dek, key.size)
        except AttachmentFileMissing:
            return MISSING_FILE
        except (ChatdError, OSError) as exc:
            why = exc.text if isinstance(exc, ChatdError) else str(exc)
            return Text(N_("the file cannot be read: {reason}"), {"reason": why})

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await asyncio.to_thread(self.decoders.start)
        # At start-up nothing is in flight: every spooled or temporary file is a left-over.
        removed = await asyncio.to_thread(self.blobs.sweep_temp_files)
        if removed:
            log.info("removed %d unfinished upload files", len(removed))
        if self.sweep_seconds:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="chatd-attachment-sweeper"
            )

    def halt(self) -> None:
        """The server begins to stop: end the image decodings in flight (see
        :meth:`ImageDecoders.halt`)."""
        self.decoders.halt()

    async def stop(self) -> None:
        await self.decoders.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            try:
                # Once per cluster: the node holding the sweep's lease (every node keeps
                # asking, so another takes over when the holder dies).
                if await self.store.hold_lease(SWEEP_JOB):
                    await self.sweep()
            except StoreClosedError:
                return
            except Exception as exc:  # keep sweeping later; never log content
                log.error("attachment sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(self.sweep_seconds)


SWEEP_JOB = "attachment_sweep"


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def delete_files(blobs: BlobStore, ids: Iterable[int]) -> int:
    """Remove the files of discarded or shredded attachments (after the commit)."""
    removed = 0
    for attachment_id in ids:
        try:
            removed += blobs.delete(attachment_id)
        except OSError as exc:  # the next verify reports and sweeps it
            log.warning("could not remove the file of attachment %x: %s", attachment_id, exc)
    return removed


def _check_file(blobs: BlobStore, attachment_id: int, dek: bytes, size: int) -> Text | None:
    if not blobs.exists(attachment_id):
        return MISSING_FILE
    verdict = blobs.verify(attachment_id, dek)
    if verdict.problem is not None:
        detail = verdict.problem
        if "attachment" in detail.params:
            # The crypto layer names attachments in decimal; admins see the hex id everywhere.
            detail = Text(detail.msgid, {**detail.params, "attachment": f"{attachment_id:016x}"})
        if verdict.bad_chunk is None:
            return Text(N_("the file does not open: {reason}"), {"reason": detail})
        return Text(
            N_("first bad chunk {chunk}: {reason}"),
            {"chunk": str(verdict.bad_chunk), "reason": detail},
        )
    with blobs.open(attachment_id, dek) as opener:
        actual = opener.size
    if actual != size:
        return Text(
            N_("the file holds {actual} bytes, the row says {size}"),
            {"actual": str(actual), "size": str(size)},
        )
    return None


def sweep_orphans(
    blobs: BlobStore, known: set[int], dead: Iterable[int], *, now: float | None = None
) -> list[Text]:
    """Remove files that no row names (older than the grace period) and files of shredded
    attachments; one warning each."""
    warnings: list[Text] = []
    cutoff = (time.time() if now is None else now) - ORPHAN_GRACE_SECONDS
    for attachment_id in blobs.ids():
        if attachment_id in known:
            continue
        path = blobs.path(attachment_id)
        try:
            recent = os.stat(path).st_mtime > cutoff
        except FileNotFoundError:
            continue
        if recent:
            warnings.append(
                Text(
                    N_(
                        "attachment file {attachment} has no row yet (an upload in progress?); kept"
                    ),
                    {"attachment": f"{attachment_id:016x}"},
                )
            )
            continue
        with contextlib.suppress(FileNotFoundError):
            blobs.delete(attachment_id)
        warnings.append(
            Text(
                N_("attachment file {attachment} had no row; removed"),
                {"attachment": f"{attachment_id:016x}"},
            )
        )
    for attachment_id in dead:
        if blobs.delete(attachment_id):
            warnings.append(
                Text(
                    N_("attachment file {attachment} of a shredded conversation; removed"),
                    {"attachment": f"{attachment_id:016x}"},
                )
            )
    return warnings
