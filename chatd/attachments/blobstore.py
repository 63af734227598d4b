"""Encrypted attachment files on disk: ``ROOT/ab/abcdef0123456789`` (the id in hex).

Each file is a sealed attachment in the chunked format of :mod:`chatd.crypto.chunks`, mode
0600, in directories of mode 0700.  A write is atomic and durable:

1. the sealed bytes go to a temporary file ``.<name>.<random>.tmp`` in the final directory
   (created ``O_EXCL``, 0600), which is fsynced;
2. it is renamed onto the final name, and the directory is fsynced.

A crash before step 2 leaves only a temporary file, which no reader ever looks at and which
:meth:`BlobStore.sweep_temp_files` removes at start-up; the final name is either absent or
complete.  The caller inserts the database row that names the attachment *after*
:meth:`BlobStore.write` returns, so no row ever points to a missing file.

``ROOT/spool/`` is where uploads are spooled in clear before they are checked and sealed
(:meth:`BlobStore.spool_path`); the same sweep empties it, so an upload cut by a crash does
not stay on disk in clear.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from chatd.core.errors import AttachmentFileMissing, IntegrityError
from chatd.crypto.chunks import DEFAULT_CHUNK_SIZE, ChunkOpener, ChunkSealer
from chatd.i18n import N_, Text

_READ_BYTES = 1024 * 1024
_TMP_SUFFIX = ".tmp"
SPOOL_DIR = "spool"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pieces(source: bytes | Path | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
    elif isinstance(source, Path):
        with source.open("rb") as fp:
            while piece := fp.read(_READ_BYTES):
                yield piece
    else:
        yield from source


@dataclass(frozen=True)
class StoredBlob:
    attachment_id: int
    path: Path
    size: int  # plaintext bytes
    sealed_size: int


@dataclass(frozen=True)
class BlobVerdict:
    """The result of :meth:`BlobStore.verify`: ``bad_chunk`` names the first chunk that fails."""

    attachment_id: int
    problem: Text | None = None  # a sentence for the operator (str(): English)
    bad_chunk: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class BlobStore:
    """The directory of encrypted attachment files; knows nothing of the database."""

    def __init__(self, root: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.root = root
        self.chunk_size = chunk_size

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> BlobStore:
        return cls(data_dir / "attachments")

    # ------------------------------------------------------------------ paths

    def path(self, attachment_id: int) -> Path:
        if not 0 < attachment_id < 2**63:
            raise ValueError("attachment ids are from 1 to 2**63 - 1")
        name = f"{attachment_id:016x}"
        return self.root / name[:2] / name

    def _mkdir(self, path: Path) -> None:
        """Create ``path`` (0700) and make its directory entry durable."""
        if path.is_dir():
            return
        if path == self.root:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        else:
            self._mkdir(path.parent)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            _fsync_dir(path.parent)

    def spool_path(self) -> Path:
        """A fresh path under ``ROOT/spool/`` for spooling one upload (not created)."""
        spool = self.root / SPOOL_DIR
        self._mkdir(spool)
        return spool / f"{secrets.token_hex(12)}.upload"

    def exists(self, attachment_id: int) -> bool:
        return self.path(attachment_id).is_file()

    def ids(self) -> Iterator[int]:
        """Every attachment id with a file, for finding orphans against the database."""
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for entry in sorted(sub.iterdir()):
                name = entry.name
                if len(name) == 16 and name.startswith(sub.name):
                    with contextlib.suppress(ValueError):
                        yield int(name, 16)

    # ------------------------------------------------------------------ writing

    def write(
        self,
        attachment_id: int,
        dek: bytes,
        source: bytes | Path | Iterable[bytes],
        *,
        key_version: int = 1,
    ) -> StoredBlob:
        """Seal ``source`` into the attachment's file, atomically; refuse to replace one."""
        final = self.path(attachment_id)
        if final.exists():
            raise FileExistsError(f"attachment {attachment_id} already has a file")
        self._mkdir(final.parent)
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}")
        sealer = ChunkSealer(
            dek, attachment_id, key_version=key_version, chunk_size=self.chunk_size
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        sealed_size = 0
        try:
            try:
                for piece in _pieces(source):
                    sealed_size += _write_all(fd, sealer.update(piece))
                sealed_size += _write_all(fd, sealer.finish())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        _fsync_dir(final.parent)
        return StoredBlob(attachment_id, final, sealer.plaintext_size, sealed_size)

    def delete(self, attachment_id: int) -> bool:
        """Remove the file (e.g. an orphan with no row); True if there was one."""
        path = self.path(attachment_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def sweep_temp_files(self, *, older_than: float = 0.0, now: float | None = None) -> list[Path]:
        """Remove temporary files and spooled uploads left by a crash; return what went.

        At start-up nothing is in flight, so the default removes every one; a periodic sweep
        while serving passes ``older_than`` (seconds) to spare uploads in progress.
        """
        if not self.root.is_dir():
            return []
        cutoff = (time.time() if now is None else now) - older_than
        removed: list[Path] = []
        for sub in sorted(self.root.iterdir()):
            if not sub.is_dir():
                continue
            for entry in sorted(sub.iterdir()):
                stale = sub.name == SPOOL_DIR or (
                    entry.name.startswith(".") and entry.name.endswith(_TMP_SUFFIX)
                )
                if not stale or not entry.is_file():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime <= cutoff:
                        entry.unlink()
                        removed.append(entry)
        return removed

    # ------------------------------------------------------------------ reading

    @contextlib.contextmanager
    def open(
        self, attachment_id: int, dek: bytes, *, key_version: int | None = None
    ) -> Iterator[ChunkOpener]:
        """A :class:`ChunkOpener` on the file, for ``size``, ``chunks()`` or ``read_range()``."""
        path = self.path(attachment_id)
        try:
            fp: BinaryIO = path.open("rb")
        except FileNotFoundError:
            raise AttachmentFileMissing(
                N_("The file of attachment {attachment} is missing."),
                attachment=f"{attachment_id:016x}",
                attachment_id=attachment_id,
            ) from None
        with fp:
            yield ChunkOpener(fp, dek, attachment_id, key_version=key_version)

    def iter_chunks(self, attachment_id: int, dek: bytes) -> Iterator[bytes]:
        """The plaintext in order, one authenticated chunk at a time (for streaming)."""
        with self.open(attachment_id, dek) as opener:
            yield from opener.chunks()

    def iter_range(self, attachment_id: int, dek: bytes, start: int, stop: int) -> Iterator[bytes]:
        """Plaintext bytes ``[start, stop)``, reading only the chunks that hold them."""
        with self.open(attachment_id, dek) as opener:
            yield from opener.read_range(start, stop)

    def read_bytes(self, attachment_id: int, dek: bytes) -> bytes:
        return b"".join(self.iter_chunks(attachment_id, dek))

    def verify(self, attachment_id: int, dek: bytes) -> BlobVerdict:
        """Open every chunk; name the first one that fails (or is missing)."""
        try:
            with self.open(attachment_id, dek) as opener:
                for _plain in opener.chunks():
                    pass
        except AttachmentFileMissing as exc:
            return BlobVerdict(attachment_id, exc.text)
        except IntegrityError as exc:  # every chunk error names its chunk; header errors don't
            chunk = exc.details.get("chunk")
            return BlobVerdict(attachment_id, exc.text, None if chunk is None else int(chunk))
        return BlobVerdict(attachment_id)


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    return len(data)
