"""Spool an upload stream to disk, refusing it as soon as it exceeds the size limit.

The HTTP route hands the request body (an async iterator of byte strings) to
:func:`spool_limited`, which writes it to a fresh file (``O_EXCL``, mode 0600) a few hundred
KiB at a time — memory stays bounded whatever the upload — and stops reading the moment one
byte more than ``max_bytes`` has arrived: the partial file is removed and
:class:`~chatd.core.errors.AttachmentTooLarge` (``attachment_too_large``, HTTP 413) is raised.
The spooled file is plaintext: put it under ``BlobStore.spool_path()``, whose directory is
emptied at start-up, and remove it once the upload is sealed or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterable
from pathlib import Path

from chatd.core.errors import AttachmentTooLarge
from chatd.i18n import N_

_FLUSH_BYTES = 256 * 1024


def too_large(max_bytes: int) -> AttachmentTooLarge:
    if max_bytes % (1024 * 1024) == 0:
        return AttachmentTooLarge(
            N_("This file is larger than {max_mib} MiB, the limit for attachments."),
            max_bytes=max_bytes,
            max_mib=max_bytes // (1024 * 1024),
        )
    return AttachmentTooLarge(
        N_("This file is larger than {max_bytes} bytes, the limit for attachments."),
        max_bytes=max_bytes,
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def spool_limited(chunks: AsyncIterable[bytes], dest: Path, max_bytes: int) -> int:
    """Write ``chunks`` to the new file ``dest``; return its size.

    Raises AttachmentTooLarge, after removing ``dest``, as soon as more than ``max_bytes``
    bytes were received (the rest of the stream is not read).  Any other failure (the client
    went away, a disk error) also removes ``dest`` before it propagates.
    """
    fd = await asyncio.to_thread(os.open, dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    total = 0
    pending: list[bytes] = []
    pending_bytes = 0
    try:
        try:
            async for piece in chunks:
                total += len(piece)
                if total > max_bytes:
                    raise too_large(max_bytes)
                pending.append(piece)
                pending_bytes += len(piece)
                if pending_bytes >= _FLUSH_BYTES:
                    await asyncio.to_thread(_write_all, fd, b"".join(pending))
                    pending, pending_bytes = [], 0
            if pending:
                await asyncio.to_thread(_write_all, fd, b"".join(pending))
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)  # one metadata call, also on cancellation: no thread hop
        raise
    return total
