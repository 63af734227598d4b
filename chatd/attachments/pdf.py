"""Is this a PDF?  Decided from its header and trailer, without parsing the body.

* Header: ``%PDF-1.x`` or ``%PDF-2.x`` within the first 1024 bytes, as the specification allows
  (ISO 32000 readers tolerate junk before it).  We accept only whitespace, NULs or a UTF-8 BOM
  before it: anything else there is the start of another format (``<html>``, ``PK``, an image),
  i.e. a polyglot, which a browser or another tool might open as that other format.
* Trailer: ``startxref`` then ``%%EOF`` within the last 1024 bytes, followed by nothing but
  whitespace or NULs.  A file with data after its last ``%%EOF`` is refused for the same reason.
* Not also a ZIP: a PDF that ``zipfile`` accepts as an archive (for instance with a ZIP
  appended whose comment ends in ``%%EOF``) is refused as a polyglot, and so is a PDF holding
  a plausible ZIP record anywhere (:mod:`.zip_records`: ``zipfile`` looks only at the last
  64 KiB, other readers scan the whole file).

The body is not parsed, so a PDF that passes can still be malformed inside or carry
JavaScript; viewers treat PDFs as untrusted anyway (see docs/architecture.md, attachments).
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import BinaryIO

from chatd.attachments.zip_records import first_zip_record
from chatd.core.errors import CorruptFile, UnsupportedFileType
from chatd.i18n import N_

HEADER_WINDOW = 1024
TRAILER_WINDOW = 1024
_VERSION = re.compile(rb"%PDF-[12]\.[0-9]")
_BLANK = b" \t\r\n\f\x00"
_BOM = b"\xef\xbb\xbf"


def has_pdf_header(head: bytes) -> bool:
    """Whether ``%PDF-`` occurs where a reader would look for it (a cheap first guess)."""
    return b"%PDF-" in head[:HEADER_WINDOW]


def check_pdf(fp: BinaryIO) -> None:
    """Return if ``fp`` is a PDF as described above; raise a ClientError otherwise."""
    fp.seek(0)
    head = fp.read(HEADER_WINDOW)
    at = head.find(b"%PDF-")
    if at < 0:
        raise UnsupportedFileType(reason="unrecognised")
    prefix = head[:at].strip(_BLANK)
    if prefix not in (b"", _BOM):
        raise UnsupportedFileType(
            N_("This file contains something else before its PDF header and cannot be sent."),
            reason="polyglot",
        )
    if not _VERSION.match(head, at):
        raise CorruptFile(N_("This PDF has an invalid header."), reason="pdf_header")

    size = fp.seek(0, os.SEEK_END)
    fp.seek(max(0, size - TRAILER_WINDOW))
    tail = fp.read(TRAILER_WINDOW)
    end = tail.rfind(b"%%EOF")
    if end < 0 or tail.rfind(b"startxref", 0, end) < 0:
        raise CorruptFile(
            N_("This PDF is incomplete (no end-of-file trailer)."), reason="pdf_trailer"
        )
    if tail[end + 5 :].strip(_BLANK):
        raise UnsupportedFileType(
            N_("This PDF has other data appended after its end and cannot be sent."),
            reason="polyglot",
        )
    if is_zip(fp) or first_zip_record(fp) is not None:
        raise UnsupportedFileType(
            N_("This file is both a PDF and a ZIP archive and cannot be sent."), reason="polyglot"
        )


def is_zip(fp: BinaryIO) -> bool:
    """Whether ``zipfile`` would open ``fp`` as an archive (it finds the end record)."""
    fp.seek(0)
    try:
        return zipfile.is_zipfile(fp)
    finally:
        fp.seek(0)
