"""Streaming, chunked AES-256-GCM for attachments (design §6).

A sealed attachment is one header followed by one or more chunks::

    header = b"CHTA" | format (u8, 1) | key_version (u32 BE) | chunk_size (u32 BE)     13 bytes
    chunk  = nonce (12 random bytes) | AES-256-GCM(plaintext) ‖ tag (16 bytes)

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds
0 … ``chunk_size`` bytes (an empty last chunk lets a writer finish without knowing the size in
advance; an empty attachment is one empty last chunk).  Chunks therefore sit at fixed offsets
and a byte range is opened by seeking straight to the chunks that hold it.

Each chunk's AAD is ``b"at|" ‖ attachment id (u64) ‖ chunk index (u64) ‖ last (u8) ‖ header``:

* a flipped bit anywhere, or a header edited to another key version or chunk size, fails the tag;
* chunks swapped, or copied from another attachment (even under the same key), fail the tag;
* a file cut at a chunk boundary ends on a chunk sealed with ``last = 0``, which fails when it is
  opened as the last one; a file cut inside a chunk has an impossible length.

The plaintext size is authenticated too: it follows from the index and length of the chunk that
opens with ``last = 1``, and :class:`ChunkOpener` opens that chunk before it reports a size or
serves a range.  Random 96-bit nonces are safe: one key seals one attachment, 160 chunks at most
for 10 MiB.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chatd.core.errors import IntegrityError
from chatd.i18n import N_

MAGIC = b"CHTA"
CHUNK_FORMAT = 1
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK_OVERHEAD = NONCE_BYTES + TAG_BYTES
MAX_ATTACHMENT_ID = 2**63 - 1

_HEADER = struct.Struct(">4sBII")
HEADER_BYTES = _HEADER.size
_AAD_FIELDS = struct.Struct(">QQB")
_DOMAIN = b"at|"


@dataclass(frozen=True)
class ChunkHeader:
    key_version: int
    chunk_size: int

    def __post_init__(self) -> None:
        if not 0 <= self.key_version <= 0xFFFFFFFF:
            raise ValueError("key_version must fit in 32 bits")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be from 1 to {MAX_CHUNK_SIZE}")

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, CHUNK_FORMAT, self.key_version, self.chunk_size)

    @classmethod
    def parse(cls, data: bytes) -> ChunkHeader:
        if len(data) < HEADER_BYTES:
            raise IntegrityError(N_("Sealed attachment is truncated: its header is incomplete."))
        magic, fmt, key_version, chunk_size = _HEADER.unpack_from(data)
        if magic != MAGIC or fmt != CHUNK_FORMAT:
            raise IntegrityError(N_("Sealed attachment has an unknown header (not a chatd file)."))
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise IntegrityError(
                N_("Sealed attachment header names a bad chunk size {size}."), size=chunk_size
            )
        return cls(key_version, chunk_size)

    @property
    def sealed_chunk_bytes(self) -> int:
        return self.chunk_size + CHUNK_OVERHEAD


@dataclass(frozen=True)
class ChunkLayout:
    """Where each chunk of a sealed file of ``file_size`` bytes lies (not yet authenticated)."""

    header: ChunkHeader
    chunk_count: int
    last_sealed_bytes: int

    @classmethod
    def of(cls, header: ChunkHeader, file_size: int) -> ChunkLayout:
        body = file_size - HEADER_BYTES
        full = header.sealed_chunk_bytes
        if body < CHUNK_OVERHEAD:
            raise IntegrityError(
                N_("Sealed attachment is truncated: it has no last chunk."), chunk=0
            )
        count, rest = divmod(body, full)
        if rest == 0:
            return cls(header, count, full)
        if rest < CHUNK_OVERHEAD:
            raise IntegrityError(
                N_(
                    "Sealed attachment is truncated inside chunk {chunk} ({rest} bytes of it left)."
                ),
                chunk=count,
                rest=rest,
            )
        return cls(header, count + 1, rest)

    @property
    def plaintext_size(self) -> int:
        return (self.chunk_count - 1) * self.header.chunk_size + (
            self.last_sealed_bytes - CHUNK_OVERHEAD
        )

    def offset(self, index: int) -> int:
        return HEADER_BYTES + index * self.header.sealed_chunk_bytes

    def sealed_bytes(self, index: int) -> int:
        if index == self.chunk_count - 1:
            return self.last_sealed_bytes
        return self.header.sealed_chunk_bytes


def _check_id(attachment_id: int) -> None:
    if not 0 <= attachment_id <= MAX_ATTACHMENT_ID:
        raise ValueError("attachment_id must be from 0 to 2**63 - 1")


class _ChunkAead:
    """Seals and opens single chunks of one attachment; no I/O."""

    __slots__ = ("_aead", "_header", "_id", "attachment_id")

    def __init__(self, dek: bytes, attachment_id: int, header: ChunkHeader) -> None:
        _check_id(attachment_id)
        self._aead = AESGCM(dek)
        self._header = header.pack()
        self.attachment_id = attachment_id

    def _aad(self, index: int, last: bool) -> bytes:
        return _DOMAIN + _AAD_FIELDS.pack(self.attachment_id, index, last) + self._header

    def seal(self, index: int, last: bool, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, self._aad(index, last))

    def open(self, index: int, last: bool, sealed: bytes) -> bytes:
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, self._aad(index, last))
        except InvalidTag:
            pass
        if last:
            try:
                self._aead.decrypt(nonce, body, self._aad(index, False))
            except InvalidTag:
                pass
            else:
                raise IntegrityError(
                    N_("Attachment {attachment} is truncated after chunk {last}."),
                    attachment=str(self.attachment_id),
                    last=index,
                    chunk=index + 1,
                ) from None
        raise IntegrityError(
            N_(
                "Chunk {chunk} of attachment {attachment} does not open"
                " (tampered, reordered, or from another attachment)."
            ),
            attachment=str(self.attachment_id),
            chunk=index,
        )


class ChunkSealer:
    """Seals a stream: feed bytes with :meth:`update`, end with :meth:`finish`.

    Both return the sealed bytes ready to be appended to the file (the header comes first, in
    the output of the first call).  At most ``chunk_size`` plaintext bytes are buffered.
    """

    def __init__(
        self,
        dek: bytes,
        attachment_id: int,
        *,
        key_version: int = 1,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.header = ChunkHeader(key_version, chunk_size)
        self._aead = _ChunkAead(dek, attachment_id, self.header)
        self._buffer = bytearray()
        self._index = 0
        self._header_sent = False
        self._finished = False
        self.plaintext_size = 0

    def _start(self) -> list[bytes]:
        if self._finished:
            raise RuntimeError("ChunkSealer already finished")
        if self._header_sent:
            return []
        self._header_sent = True
        return [self.header.pack()]

    def update(self, data: bytes) -> bytes:
        out = self._start()
        self._buffer += data
        self.plaintext_size += len(data)
        size = self.header.chunk_size
        # Keep the last chunk_size bytes back: they may turn out to be the last chunk.
        taken = 0
        while len(self._buffer) - taken > size:
            piece = bytes(self._buffer[taken : taken + size])
            out.append(self._aead.seal(self._index, False, piece))
            self._index += 1
            taken += size
        del self._buffer[:taken]
        return b"".join(out)

    def finish(self) -> bytes:
        out = self._start()
        out.append(self._aead.seal(self._index, True, bytes(self._buffer)))
        self._buffer.clear()
        self._finished = True
        return b"".join(out)

    @property
    def chunk_count(self) -> int:
        """Chunks emitted so far (the last one included once finished)."""
        return self._index + (1 if self._finished else 0)


def seal_bytes(
    dek: bytes,
    attachment_id: int,
    data: bytes,
    *,
    key_version: int = 1,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """The whole sealed file for ``data`` (tests and small payloads)."""
    sealer = ChunkSealer(dek, attachment_id, key_version=key_version, chunk_size=chunk_size)
    return sealer.update(data) + sealer.finish()


class ChunkOpener:
    """Opens a sealed attachment from a seekable binary file, whole or by byte range.

    Every chunk returned has been authenticated at its index; nothing unauthenticated is ever
    yielded.  The plaintext size is authenticated (by opening the last chunk) before it is
    reported or used to bound a range.
    """

    def __init__(
        self,
        fp: BinaryIO,
        dek: bytes,
        attachment_id: int,
        *,
        key_version: int | None = None,
    ) -> None:
        self._fp = fp
        fp.seek(0)
        self.header = ChunkHeader.parse(fp.read(HEADER_BYTES))
        if key_version is not None and self.header.key_version != key_version:
            raise IntegrityError(
                N_("Attachment {attachment} is sealed under key version {found}, not {expected}."),
                attachment=str(attachment_id),
                found=self.header.key_version,
                expected=key_version,
            )
        self.layout = ChunkLayout.of(self.header, fp.seek(0, os.SEEK_END))
        self._aead = _ChunkAead(dek, attachment_id, self.header)
        self._last: bytes | None = None

    @property
    def chunk_count(self) -> int:
        return self.layout.chunk_count

    def open_chunk(self, index: int) -> bytes:
        """The plaintext of chunk ``index``, authenticated; IntegrityError if it fails."""
        if not 0 <= index < self.layout.chunk_count:
            raise IndexError(index)
        last = index == self.layout.chunk_count - 1
        if last and self._last is not None:
            return self._last
        self._fp.seek(self.layout.offset(index))
        want = self.layout.sealed_bytes(index)
        sealed = self._fp.read(want)
        if len(sealed) != want:
            raise IntegrityError(
                N_("Attachment {attachment} changed size while it was read."),
                attachment=str(self._aead.attachment_id),
                chunk=index,
            )
        plain = self._aead.open(index, last, sealed)
        if last:
            self._last = plain
        return plain

    @property
    def size(self) -> int:
        """The plaintext size, authenticated by opening the last chunk."""
        self.open_chunk(self.layout.chunk_count - 1)
        return self.layout.plaintext_size

    def chunks(self) -> Iterator[bytes]:
        """Every plaintext chunk in order (the final one may be empty)."""
        for index in range(self.layout.chunk_count):
            yield self.open_chunk(index)

    def read_range(self, start: int, stop: int) -> Iterator[bytes]:
        """Plaintext bytes ``[start, stop)`` (clamped to the size), as a few pieces."""
        size = self.size
        start, stop = max(0, start), min(stop, size)
        if start >= stop:
            return
        chunk_size = self.header.chunk_size
        for index in range(start // chunk_size, (stop - 1) // chunk_size + 1):
            plain = self.open_chunk(index)
            base = index * chunk_size
            yield plain[max(start - base, 0) : stop - base]

    def first_bad_chunk(self) -> int | None:
        """The index of the first chunk that fails (or that is missing), None if all open."""
        for index in range(self.layout.chunk_count):
            try:
                self.open_chunk(index)
            except IntegrityError as exc:
                bad = exc.details.get("chunk", index)
                return int(bad)
        return None
