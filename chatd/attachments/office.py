"""Office Open XML (.docx, .xlsx): a real ZIP with the expected parts, within limits.

Decided from the ZIP's central directory and one small part, never by decompressing the whole
archive:

* the file starts with a local file header at offset 0 and ``zipfile`` opens it (nothing
  prepended, which would make it a polyglot);
* at most 1000 entries, no duplicate names, no absolute, ``..``, backslash or drive paths,
  no encrypted entries, only stored or deflated entries;
* declared sizes: each entry over 64 KiB expands at most 100 times, all together to at most
  100 MiB, and no entry has more compressed bytes than its declared size could need (an entry
  lying about its size to slip past the ratio check);
* ``[Content_Types].xml`` and ``_rels/.rels`` are present; ``word/document.xml`` (Word) or
  ``xl/workbook.xml`` (Excel), not both, whose own ``Override`` in ``[Content_Types].xml``
  (read, at most 1 MiB of it, and holding no DTD) gives exactly the docx or xlsx main type —
  not the macro-enabled one, nor a type merely mentioned elsewhere in the file;
* no VBA project, whatever its part is called: a part named ``vbaProject.bin``, a content
  type or a relationship (every ``.rels`` part is read, at most 1 MiB each) naming a VBA
  project or VBA data, or a macro-enabled type: macro-enabled documents are refused.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from chatd.attachments.kinds import FileKind
from chatd.core.errors import CorruptFile, UnsupportedFileType
from chatd.i18n import N_

ZIP_MAGIC = b"PK\x03\x04"
BOTH_WORD_AND_EXCEL = N_("This document is both a Word and an Excel file.")
MACROS = N_("Documents with macros are not accepted; save it without macros.")
# Content types (application/vnd.ms-office.vbaProject, …vbaData+xml, …macroEnabled…) and
# relationship types (…/relationships/vbaProject) of macros, compared in lower case.
_MACRO_MARKERS = (b"vbaproject", b"vbadata", b"macroenabled")
# An Override element and its attributes.  Read with patterns rather than an XML parser, and
# failing closed: a PartName spelt with character references is not recognised, so the main
# part has no Override and the document is refused.
_OVERRIDE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Override\b([^>]*)>")
_ATTRIBUTE = re.compile(rb"""([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 1000
    max_total_uncompressed: int = 100 * 1024 * 1024
    max_ratio: int = 100
    max_content_types_bytes: int = 1024 * 1024


CONTENT_TYPES = "[Content_Types].xml"
ROOT_RELS = "_rels/.rels"
_MAIN_PARTS = {
    FileKind.DOCX: (
        "word/document.xml",
        b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    ),
    FileKind.XLSX: (
        "xl/workbook.xml",
        b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    ),
}
_DRIVE = re.compile(r"^[A-Za-z]:")
# Deflate never needs much more than the data itself (5 bytes per 64 KiB stored block).
_DEFLATE_SLACK = 64
# Entries smaller than this cannot be a bomb whatever their ratio (the total limit still counts
# them); tiny parts such as an empty-ish XML file legitimately compress more than 100 times.
_RATIO_FLOOR = 64 * 1024


def _bomb(message: str, **values: object) -> UnsupportedFileType:
    return UnsupportedFileType(message, reason="zip_limits", **values)


def _expands_too_much(size: int) -> UnsupportedFileType:
    if size >= 1024 * 1024:
        return _bomb(
            N_("This document cannot be sent: it expands to more than {mib} MiB."),
            mib=size // (1024 * 1024),
        )
    return _bomb(
        N_("This document cannot be sent: it expands to more than {size} bytes."), size=size
    )


def _check_name(name: str) -> None:
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or _DRIVE.match(name)
        or ".." in parts
        or any(ord(ch) < 0x20 for ch in name)
    ):
        raise CorruptFile(
            N_("This document contains an entry with an unsafe path."), reason="zip_path"
        )


def _check_entries(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    if len(infos) > limits.max_entries:
        raise _bomb(
            N_("This document cannot be sent: it has more than {max} parts."),
            max=limits.max_entries,
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        _check_name(info.filename)
        if info.filename in seen:
            raise CorruptFile(N_("This document has two parts of the same name."), reason="zip_dup")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise UnsupportedFileType(
                N_("Password-protected documents cannot be checked and are not accepted."),
                reason="encrypted",
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CorruptFile(N_("This document uses an unusual compression."), reason="zip_method")
        declared, packed = info.file_size, info.compress_size
        if info.compress_type == zipfile.ZIP_STORED and declared != packed:
            raise CorruptFile(N_("This document has an inconsistent part."), reason="zip_sizes")
        if packed > declared + declared // 1000 + _DEFLATE_SLACK:
            raise _bomb(
                N_("This document cannot be sent: a part declares a size smaller than its data.")
            )
        if declared > _RATIO_FLOOR and declared > limits.max_ratio * max(packed, 1):
            raise _bomb(
                N_(
                    "This document cannot be sent: a part expands more than a document"
                    " normally does."
                )
            )
        total += declared
        if total > limits.max_total_uncompressed:
            raise _expands_too_much(limits.max_total_uncompressed)
        if info.filename.lower().endswith("vbaproject.bin"):
            raise UnsupportedFileType(MACROS, reason="macros")


def check_ooxml(fp: BinaryIO, limits: ZipLimits | None = None) -> FileKind:
    """DOCX or XLSX if ``fp`` is one as described above; raise a ClientError otherwise."""
    limits = limits or ZipLimits()
    fp.seek(0)
    if fp.read(4) != ZIP_MAGIC:
        raise UnsupportedFileType(reason="unrecognised")
    fp.seek(0)
    try:
        archive = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise CorruptFile(N_("This document is not a valid archive."), reason="zip") from None
    with archive:
        infos = archive.infolist()
        if not infos or min(info.header_offset for info in infos) != 0:
            # zipfile shifts offsets when data precedes the archive; ours must start at 0.
            raise UnsupportedFileType(
                N_("This file contains something else before its document data."),
                reason="polyglot",
            )
        _check_entries(infos, limits)
        names = {info.filename for info in infos}
        found = [kind for kind, (part, _ct) in _MAIN_PARTS.items() if part in names]
        if CONTENT_TYPES not in names or ROOT_RELS not in names or not found:
            raise UnsupportedFileType(
                N_("This archive is not a Word or Excel document."), reason="not_office"
            )
        if len(found) > 1:
            raise CorruptFile(BOTH_WORD_AND_EXCEL, reason="ambiguous")
        kind = found[0]
        content_types = _read_small(archive, CONTENT_TYPES, limits.max_content_types_bytes)
        relationships = [
            _read_small(archive, name, limits.max_content_types_bytes)
            for name in sorted(names)
            if name.lower().endswith(".rels")
        ]
    if b"<!DOCTYPE" in content_types or b"<!ENTITY" in content_types:
        raise CorruptFile(N_("This document has a forbidden declaration."), reason="xml_dtd")
    for declared in (content_types, *relationships):
        if any(marker in declared.lower() for marker in _MACRO_MARKERS):
            raise UnsupportedFileType(MACROS, reason="macros")
    part, main_type = _MAIN_PARTS[kind]
    if _override_of(content_types, part) != main_type:
        raise UnsupportedFileType(
            N_("This document's type is not accepted (for example, it contains macros)."),
            reason="content_type",
        )
    return kind


def _override_of(content_types: bytes, part: str) -> bytes | None:
    """The content type ``[Content_Types].xml`` gives ``part`` in its own ``Override`` (part
    names compare case-insensitively, as in OPC), or None."""
    wanted = b"/" + part.lower().encode()
    for element in _OVERRIDE.finditer(content_types):
        attributes: dict[bytes, bytes] = {
            match.group(1): match.group(2) or match.group(3) or b""
            for match in _ATTRIBUTE.finditer(element.group(1))
        }
        if attributes.get(b"PartName", b"").lower() == wanted:
            return attributes.get(b"ContentType", b"").strip()
    return None


def _read_small(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise _bomb(N_("This document cannot be sent: its part {part} is too large."), part=name)
    try:
        with archive.open(info) as part:
            data = part.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, RuntimeError):
        raise CorruptFile(N_("This document is damaged."), reason="zip") from None
    if len(data) > limit:
        raise _bomb(N_("This document cannot be sent: its part {part} is too large."), part=name)
    return data
