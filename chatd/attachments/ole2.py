"""Legacy Office (.doc, .xls): an OLE2 compound file with a Word or an Excel main stream.

We parse just enough of the compound file format ([MS-CFB]) ourselves — header, FAT (through
the DIFAT), the directory chain and the first bytes of one stream — instead of depending on
``olefile``: that package reads and writes everything (property sets, mini FAT, metadata) and
has had no release since 2023, while this check needs about 150 lines, every loop of which is
bounded by the file's sector count.

A legacy document is accepted when:

* the header is valid (magic ``D0 CF 11 E0 A1 B1 1A E1``, version 3 or 4, little-endian,
  512- or 4096-byte sectors) and every chain followed stays inside the file without a loop;
* the root storage holds ``WordDocument`` starting with the Word FIB magic ``EC A5`` (.doc), or
  ``Workbook``/``Book`` starting with a BIFF ``BOF`` record ``09 08`` (.xls) — not both;
* it holds no VBA macros (``Macros`` or ``_VBA_PROJECT_CUR``) and is not an encrypted OOXML
  package (``EncryptedPackage``), whose type cannot be checked.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from chatd.attachments.kinds import FileKind
from chatd.attachments.office import BOTH_WORD_AND_EXCEL
from chatd.core.errors import CorruptFile, UnsupportedFileType
from chatd.i18n import N_

OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_HEADER = struct.Struct("<8s16sHHHHH6sIIIIIIIII")
_DIRENT = struct.Struct("<64sHBBIII16sIQQIQ")
_DIRENT_BYTES = 128
_MAXREGSECT = 0xFFFFFFFA
_ENDOFCHAIN = 0xFFFFFFFE
_NOSTREAM = 0xFFFFFFFF
_STORAGE, _STREAM, _ROOT = 1, 2, 5
_HEADER_DIFAT = 109

_WORD_MAGIC = b"\xec\xa5"
_BIFF_BOF = b"\x09\x08"
_MACRO_STORAGES = {"macros", "_vba_project_cur"}


def _corrupt(what: str) -> CorruptFile:
    """``what`` names the damaged structure, for diagnosis (a detail, not the sentence)."""
    return CorruptFile(N_("This Office document is damaged."), reason="ole2", part=what)


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: int
    left: int
    right: int
    child: int
    start: int
    size: int


class _Compound:
    """Read-only access to the parts of a compound file that the check needs."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        file_size = fp.seek(0, os.SEEK_END)
        fp.seek(0)
        raw = fp.read(512)
        if len(raw) < 512 or not raw.startswith(OLE2_MAGIC):
            raise UnsupportedFileType(reason="unrecognised")
        fields = _HEADER.unpack_from(raw)
        major, byte_order, shift, mini_shift = fields[3], fields[4], fields[5], fields[6]
        if byte_order != 0xFFFE or (major, shift) not in ((3, 9), (4, 12)) or mini_shift != 6:
            raise _corrupt("header")
        self.sector_size = 1 << shift
        # Version 3 files may leave garbage in the high half of a stream size.
        self.size_mask = 0xFFFFFFFF if major == 3 else 0xFFFFFFFFFFFFFFFF
        self.sector_count = max(0, file_size // self.sector_size - 1)
        num_fat, first_dir = fields[9], fields[10]
        self.mini_cutoff = fields[12]
        first_difat, num_difat = fields[15], fields[16]
        difat = list(struct.unpack_from(f"<{_HEADER_DIFAT}I", raw, 76))
        self.fat_sectors = self._fat_sectors(difat, num_fat, first_difat, num_difat)
        self.entries = self._directory(first_dir)

    def _sector(self, sid: int) -> bytes:
        if sid >= self.sector_count:
            raise _corrupt("sector outside the file")
        self.fp.seek((sid + 1) * self.sector_size)
        data = self.fp.read(self.sector_size)
        if len(data) != self.sector_size:
            raise _corrupt("short sector")
        return data

    def _fat_sectors(
        self, difat: list[int], num_fat: int, first_difat: int, num_difat: int
    ) -> list[int]:
        if num_fat > self.sector_count:
            raise _corrupt("FAT size")
        sectors = difat[: min(num_fat, _HEADER_DIFAT)]
        per = self.sector_size // 4 - 1
        sid, seen = first_difat, set[int]()
        while len(sectors) < num_fat:
            if sid > _MAXREGSECT or sid in seen or len(seen) >= num_difat:
                raise _corrupt("DIFAT chain")
            seen.add(sid)
            values = struct.unpack(f"<{per + 1}I", self._sector(sid))
            sectors.extend(values[:per])
            sid = values[per]
        sectors = sectors[:num_fat]
        if any(s > _MAXREGSECT or s >= self.sector_count for s in sectors):
            raise _corrupt("FAT location")
        return sectors

    def _next(self, sid: int) -> int:
        per = self.sector_size // 4
        index, slot = divmod(sid, per)
        if index >= len(self.fat_sectors):
            raise _corrupt("sector beyond the FAT")
        self.fp.seek((self.fat_sectors[index] + 1) * self.sector_size + slot * 4)
        raw = self.fp.read(4)
        if len(raw) != 4:
            raise _corrupt("short FAT")
        return int.from_bytes(raw, "little")

    def chain(self, start: int) -> Iterator[int]:
        """The sector ids of a chain, refusing loops and sectors outside the file."""
        sid, steps = start, 0
        while sid != _ENDOFCHAIN:
            if sid > _MAXREGSECT or steps > self.sector_count:
                raise _corrupt("sector chain")
            yield sid
            steps += 1
            sid = self._next(sid)

    def _directory(self, first_dir: int) -> list[_Entry]:
        entries: list[_Entry] = []
        for sid in self.chain(first_dir):
            data = self._sector(sid)
            for offset in range(0, self.sector_size, _DIRENT_BYTES):
                f = _DIRENT.unpack_from(data, offset)
                name_len = f[1]
                if not 2 <= name_len <= 64 or name_len % 2:
                    name = ""
                else:
                    name = f[0][: name_len - 2].decode("utf-16-le", "replace")
                entries.append(_Entry(name, f[2], f[4], f[5], f[6], f[11], f[12] & self.size_mask))
        if not entries or entries[0].kind != _ROOT:
            raise _corrupt("no root entry")
        return entries

    def root_children(self) -> dict[str, _Entry]:
        """The entries directly under the root storage, by lower-cased name."""
        found: dict[str, _Entry] = {}
        stack, seen = [self.entries[0].child], set[int]()
        while stack:
            index = stack.pop()
            if index == _NOSTREAM:
                continue
            if index >= len(self.entries) or index in seen:
                raise _corrupt("directory tree")
            seen.add(index)
            entry = self.entries[index]
            if entry.kind in (_STORAGE, _STREAM):
                found[entry.name.lower()] = entry
            stack += (entry.left, entry.right)
        return found

    def stream_head(self, entry: _Entry, count: int) -> bytes:
        """The first ``count`` bytes of a stream (from the mini stream if it is small)."""
        if entry.size < count:
            return b""
        if entry.size >= self.mini_cutoff:
            return self._sector(entry.start)[:count]
        # In the mini stream: 64-byte sectors stored along the root entry's chain.
        offset = entry.start * 64
        root = self.entries[0]
        if offset + count > root.size:
            raise _corrupt("mini stream")
        position = offset // self.sector_size
        for step, sid in enumerate(self.chain(root.start)):
            if step == position:
                start = offset % self.sector_size
                return self._sector(sid)[start : start + count]
        raise _corrupt("mini stream chain")


def check_ole2(fp: BinaryIO) -> FileKind:
    """DOC or XLS if ``fp`` is a legacy Office document as described above."""
    compound = _Compound(fp)
    children = compound.root_children()
    if "encryptedpackage" in children:
        raise UnsupportedFileType(
            N_("Password-protected documents cannot be checked and are not accepted."),
            reason="encrypted",
        )
    if _MACRO_STORAGES & children.keys():
        raise UnsupportedFileType(
            N_("Documents with macros are not accepted; save it without macros."), reason="macros"
        )
    word = children.get("worddocument")
    book = children.get("workbook") or children.get("book")
    found: list[FileKind] = []
    if word is not None and word.kind == _STREAM:
        if compound.stream_head(word, 2) != _WORD_MAGIC:
            raise _corrupt("Word stream")
        found.append(FileKind.DOC)
    if book is not None and book.kind == _STREAM:
        if compound.stream_head(book, 2) != _BIFF_BOF:
            raise _corrupt("Excel stream")
        found.append(FileKind.XLS)
    if not found:
        raise UnsupportedFileType(
            N_("This file is not a Word or Excel document."), reason="not_office"
        )
    if len(found) > 1:
        raise CorruptFile(BOTH_WORD_AND_EXCEL, reason="ole2", part="both Word and Excel")
    return found[0]
