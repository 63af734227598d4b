"""One upload, from a spooled file to what is stored: type, clean content, thumbnail, name.

:func:`ingest` is pure apart from reading the spooled file (the server runs its steps
apart: :func:`check_upload` and :func:`document_file` in a thread, the image decoding in a
worker process, then :func:`image_file`): it decides the type from the
content (:func:`~chatd.attachments.sniff.classify`), re-encodes images (only the re-encoded
image is ever stored, see :mod:`.images`), and sanitises the file name.  Documents are stored
byte for byte as uploaded, so their content stays at the spooled path; the caller seals it
with :meth:`~chatd.attachments.blobstore.BlobStore.write`, then inserts the row.

The file name keeps the extension of what is stored, not of what was sent: ``IMG_0001.HEIC``
is stored as JPEG and becomes ``IMG_0001.jpg``; ``facture.exe`` that is a PDF becomes
``facture.exe.pdf``.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from chatd.attachments.images import ImageLimits, ProcessedImage, process_image
from chatd.attachments.kinds import KNOWN_EXTENSIONS, FileKind
from chatd.attachments.sniff import classify
from chatd.core.errors import AttachmentTooLarge

MAX_NAME_CHARS = 200
DEFAULT_STEM = "attachment"
_FORBIDDEN = set('<>:"/\\|?*')
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_STRIP = " .\u00a0"
# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned.
_DROPPED = {"Cc", "Cf", "Cs", "Co", "Cn"}
_SPACES = "\t\n\r\v\f"


@dataclass(frozen=True)
class IngestedFile:
    """What to store for one upload.

    ``kind``/``mime``/``size`` describe the stored content; ``source_kind`` is what was sent
    (they differ for HEIC, stored as JPEG).  ``content`` is the spooled path for documents and
    the re-encoded bytes for images.  Images have a JPEG ``thumbnail`` and dimensions.
    """

    kind: FileKind
    source_kind: FileKind
    mime: str
    size: int
    name: str
    content: Path | bytes
    thumbnail: bytes | None
    width: int | None
    height: int | None


def sanitise_file_name(name: str, kind: FileKind) -> str:
    """A safe display/download name for a file stored as ``kind``.

    Keeps the last path component only; drops control, format (bidirectional overrides such
    as U+202E) and Windows-forbidden characters; trims dots and spaces; replaces a known
    extension by the canonical one of ``kind`` (any other suffix is kept and the extension
    appended); at most 200 characters; never empty.
    """
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for ch in base:
        category = unicodedata.category(ch)
        if ch in _SPACES or category in ("Zs", "Zl", "Zp"):
            kept.append(" ")
        elif category not in _DROPPED and ch not in _FORBIDDEN:
            kept.append(ch)
    cleaned = "".join(kept)
    cleaned = " ".join(cleaned.split()).strip(_STRIP)
    stem, dot, suffix = cleaned.rpartition(".")
    if dot and stem and suffix.lower() in KNOWN_EXTENSIONS:
        cleaned = stem.rstrip(_STRIP)
    extension = "." + kind.extension
    cleaned = cleaned[: MAX_NAME_CHARS - len(extension)].rstrip(_STRIP) or DEFAULT_STEM
    if cleaned.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        cleaned = "_" + cleaned[: MAX_NAME_CHARS - len(extension) - 1]
    return cleaned + extension


def check_upload(path: Path, *, max_bytes: int | None = None) -> tuple[FileKind, int]:
    """The type (from the content) and size of the spooled upload at ``path``; a ClientError
    if it is refused.  ``max_bytes`` re-checks the size (the spooler enforces it while
    reading)."""
    size = os.stat(path).st_size
    if max_bytes is not None and size > max_bytes:
        raise AttachmentTooLarge(max_bytes=max_bytes)
    return classify(path), size


def document_file(path: Path, original_name: str, kind: FileKind, size: int) -> IngestedFile:
    """A document is stored as it was sent: its content stays at the spooled ``path``."""
    return IngestedFile(
        kind=kind,
        source_kind=kind,
        mime=kind.mime,
        size=size,
        name=sanitise_file_name(original_name, kind),
        content=path,
        thumbnail=None,
        width=None,
        height=None,
    )


def image_file(image: ProcessedImage, source_kind: FileKind, original_name: str) -> IngestedFile:
    """An image is stored re-encoded (:func:`~.images.process_image`)."""
    return IngestedFile(
        kind=image.kind,
        source_kind=source_kind,
        mime=image.kind.mime,
        size=len(image.data),
        name=sanitise_file_name(original_name, image.kind),
        content=image.data,
        thumbnail=image.thumbnail,
        width=image.width,
        height=image.height,
    )


def ingest(
    path: Path,
    original_name: str,
    *,
    max_bytes: int | None = None,
    image_limits: ImageLimits | None = None,
) -> IngestedFile:
    """Classify and prepare the spooled upload at ``path``, images decoded in this process
    (the server decodes them in worker processes instead: :mod:`.decoding`); a ClientError
    if it is refused."""
    kind, size = check_upload(path, max_bytes=max_bytes)
    if not kind.is_image:
        return document_file(path, original_name, kind, size)
    return image_file(process_image(path, kind, image_limits), kind, original_name)
