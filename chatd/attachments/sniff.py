"""Decide an upload's type from its content alone — never from its name or Content-Type.

:func:`classify` first lists every family whose signature the bytes carry:

=========  ==================================================================
family     signature
=========  ==================================================================
pdf        ``%PDF-`` within the first 1024 bytes
zip        ``PK\\x03\\x04`` at offset 0, or a ZIP end record ``zipfile`` accepts
ole2       ``D0 CF 11 E0 A1 B1 1A E1`` at offset 0
image      JPEG, PNG, GIF, WebP or HEIC magic at offset 0
=========  ==================================================================

No signature: refused (SVG, HTML, plain text, executables …).  More than one: refused as a
polyglot (a file that another program would open as something else).  Exactly one: the
family's own check decides — :mod:`.pdf`, :mod:`.office` (OOXML), :mod:`.ole2` (legacy
Office) — and an image is confirmed by Pillow opening it with that format's plugin only.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from chatd.attachments import images, office, ole2, pdf
from chatd.attachments.kinds import FileKind
from chatd.core.errors import UnsupportedFileType
from chatd.i18n import N_

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_GENERIC = {b"mif1", b"msf1"}


def image_kind(head: bytes) -> FileKind | None:
    """The image type announced by the magic at the start of ``head``, if any."""
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind.PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return FileKind.GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FileKind.WEBP
    if head[4:8] == b"ftyp":
        box = int.from_bytes(head[:4], "big")
        if not 16 <= box <= min(len(head), 256) or box % 4:
            return None
        major = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, box, 4)}
        # mif1/msf1 are generic HEIF brands, also used by AVIF: require an HEVC brand too.
        if major in _HEIF_BRANDS or (major in _HEIF_GENERIC and compatible & _HEIF_BRANDS):
            return FileKind.HEIC
    return None


@contextmanager
def _binary(source: Path | bytes) -> Iterator[BinaryIO]:
    if isinstance(source, Path):
        with source.open("rb") as fp:
            yield fp
    else:
        yield io.BytesIO(source)


def _families(fp: BinaryIO, head: bytes) -> set[str]:
    found = set()
    if pdf.has_pdf_header(head):
        found.add("pdf")
    if head.startswith(office.ZIP_MAGIC) or pdf.is_zip(fp):
        found.add("zip")
    if head.startswith(ole2.OLE2_MAGIC):
        found.add("ole2")
    if image_kind(head) is not None:
        found.add("image")
    return found


def classify(source: Path | bytes) -> FileKind:
    """The accepted type of ``source`` (a spooled upload's path, or its bytes).

    Raises UnsupportedFileType (``unsupported_file_type``) for anything not accepted,
    CorruptFile (``corrupt_file``) for a damaged file of an accepted type, and ImageTooLarge
    (``image_too_large``) for an image whose declared size trips Pillow's bomb check.  Reads
    only the parts it needs: never decompresses a whole archive or decodes an image.
    """
    with _binary(source) as fp:
        if fp.seek(0, os.SEEK_END) == 0:
            raise UnsupportedFileType(N_("This file is empty."), reason="empty")
        fp.seek(0)
        head = fp.read(1024)
        families = _families(fp, head)
        if not families:
            raise UnsupportedFileType(reason="unrecognised")
        if len(families) > 1:
            raise UnsupportedFileType(
                N_("This file is several formats at once and cannot be sent."), reason="polyglot"
            )
        (family,) = families
        if family == "pdf":
            pdf.check_pdf(fp)
            return FileKind.PDF
        if family == "zip":
            return office.check_ooxml(fp)
        if family == "ole2":
            return ole2.check_ole2(fp)
        kind = image_kind(head)
        assert kind is not None
        images.open_image(fp, kind).close()
        return kind
