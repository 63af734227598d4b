"""The accepted attachment types, with their canonical MIME type and file extension."""

from __future__ import annotations

import enum


class FileKind(enum.Enum):
    PDF = "pdf"
    DOCX = "docx"
    XLSX = "xlsx"
    DOC = "doc"
    XLS = "xls"
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    WEBP = "webp"
    HEIC = "heic"

    @property
    def mime(self) -> str:
        return _MIME[self]

    @property
    def extension(self) -> str:
        """The canonical extension, without the dot."""
        return _EXTENSION[self]

    @property
    def is_image(self) -> bool:
        return self in IMAGE_KINDS


_MIME = {
    FileKind.PDF: "application/pdf",
    FileKind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    FileKind.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    FileKind.DOC: "application/msword",
    FileKind.XLS: "application/vnd.ms-excel",
    FileKind.JPEG: "image/jpeg",
    FileKind.PNG: "image/png",
    FileKind.GIF: "image/gif",
    FileKind.WEBP: "image/webp",
    FileKind.HEIC: "image/heic",
}

_EXTENSION = {
    FileKind.PDF: "pdf",
    FileKind.DOCX: "docx",
    FileKind.XLSX: "xlsx",
    FileKind.DOC: "doc",
    FileKind.XLS: "xls",
    FileKind.JPEG: "jpg",
    FileKind.PNG: "png",
    FileKind.GIF: "gif",
    FileKind.WEBP: "webp",
    FileKind.HEIC: "heic",
}

IMAGE_KINDS = frozenset({FileKind.JPEG, FileKind.PNG, FileKind.GIF, FileKind.WEBP, FileKind.HEIC})

# Every extension a user's file of an accepted type may carry; a name ending in one of these
# has it replaced by the canonical extension of the detected (or re-encoded) type.
KNOWN_EXTENSIONS = frozenset(
    {
        "pdf",
        "doc",
        "docx",
        "xls",
        "xlsx",
        "jpg",
        "jpeg",
        "jpe",
        "jfif",
        "png",
        "apng",
        "gif",
        "webp",
        "heic",
        "heif",
        "hif",
    }
)
