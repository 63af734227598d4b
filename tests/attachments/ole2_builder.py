"""Build small but valid OLE2 compound files ([MS-CFB] version 3, 512-byte sectors).

Enough to make real legacy Office containers for the tests: a root storage, streams (those
under 4096 bytes go to the mini stream, like Office does) and empty storages.  Written from
the specification, independently of the reader in ``chatd/attachments/ole2.py``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SECTOR = 512
MINI = 64
CUTOFF = 4096
FREESECT = 0xFFFFFFFF
ENDOFCHAIN = 0xFFFFFFFE
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")


@dataclass
class Stream:
    name: str
    data: bytes


@dataclass
class Storage:
    name: str


def _sectors(n: int, size: int = SECTOR) -> int:
    return (n + size - 1) // size


def _dirent(
    name: str, kind: int, *, child: int = NOSTREAM, right: int = NOSTREAM, start: int, size: int
) -> bytes:
    encoded = name.encode("utf-16-le") + b"\0\0"
    assert len(encoded) <= 64
    return struct.pack(
        "<64sHBBIII16sIQQIQ",
        encoded,
        len(encoded),
        kind,
        1,  # black
        NOSTREAM,
        right,
        child,
        b"\0" * 16,
        0,
        0,
        0,
        start,
        size,
    )


def build_ole2(items: list[Stream | Storage]) -> bytes:
    """A compound file whose root storage holds ``items`` (as a right-leaning sibling list)."""
    small = [i for i in items if isinstance(i, Stream) and len(i.data) < CUTOFF]
    large = [i for i in items if isinstance(i, Stream) and len(i.data) >= CUTOFF]

    # Mini stream: small streams back to back, each padded to 64 bytes.
    mini_start: dict[str, int] = {}
    mini_fat: list[int] = []
    mini = bytearray()
    for stream in small:
        count = max(1, _sectors(len(stream.data), MINI))
        first = len(mini_fat)
        mini_start[stream.name] = first
        mini_fat += [first + k + 1 for k in range(count - 1)] + [ENDOFCHAIN]
        mini += stream.data.ljust(count * MINI, b"\0")

    dir_count = _sectors((len(items) + 1) * 128)
    minifat_count = _sectors(len(mini_fat) * 4) if mini_fat else 0
    container_count = _sectors(len(mini)) if mini else 0
    large_counts = [_sectors(len(s.data)) for s in large]
    body = dir_count + minifat_count + container_count + sum(large_counts)
    fat_count = 1
    while fat_count * (SECTOR // 4) < fat_count + body:
        fat_count += 1
    assert fat_count <= 109

    fat: list[int] = [FATSECT] * fat_count
    next_free = fat_count

    def allocate(count: int) -> int:
        nonlocal next_free
        if count == 0:
            return ENDOFCHAIN
        first = next_free
        fat.extend([first + k + 1 for k in range(count - 1)] + [ENDOFCHAIN])
        next_free += count
        return first

    first_dir = allocate(dir_count)
    first_minifat = allocate(minifat_count)
    first_container = allocate(container_count)
    large_start = {s.name: allocate(c) for s, c in zip(large, large_counts, strict=True)}
    fat += [FREESECT] * (fat_count * (SECTOR // 4) - len(fat))

    entries = [
        _dirent(
            "Root Entry",
            5,
            child=1 if items else NOSTREAM,
            start=first_container,
            size=len(mini),
        )
    ]
    for index, item in enumerate(items, start=1):
        right = index + 1 if index < len(items) else NOSTREAM
        if isinstance(item, Storage):
            entries.append(_dirent(item.name, 1, right=right, start=0, size=0))
        elif item.name in mini_start:
            entries.append(
                _dirent(item.name, 2, right=right, start=mini_start[item.name], size=len(item.data))
            )
        else:
            entries.append(
                _dirent(
                    item.name, 2, right=right, start=large_start[item.name], size=len(item.data)
                )
            )
    unused = struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM,
                         b"\0" * 16, 0, 0, 0, 0, 0)  # fmt: skip
    directory = b"".join(entries).ljust(dir_count * SECTOR, b"\0")
    directory = b"".join(
        directory[i : i + 128] if directory[i : i + 128].strip(b"\0") else unused
        for i in range(0, len(directory), 128)
    )

    difat = list(range(fat_count)) + [FREESECT] * (109 - fat_count)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII109I",
        MAGIC,
        b"\0" * 16,
        0x3E,
        3,
        0xFFFE,
        9,
        6,
        b"\0" * 6,
        0,
        fat_count,
        first_dir,
        0,
        CUTOFF,
        first_minifat,
        minifat_count,
        ENDOFCHAIN,
        0,
        *difat,
    )
    assert len(header) == SECTOR
    parts = [header, struct.pack(f"<{len(fat)}I", *fat), directory]
    if mini_fat:
        minifat = mini_fat + [FREESECT] * (minifat_count * (SECTOR // 4) - len(mini_fat))
        parts.append(struct.pack(f"<{len(minifat)}I", *minifat))
    parts.append(bytes(mini).ljust(container_count * SECTOR, b"\0"))
    for stream, count in zip(large, large_counts, strict=True):
        parts.append(stream.data.ljust(count * SECTOR, b"\0"))
    return b"".join(parts)


def word_document(*, extra: list[Stream | Storage] | None = None) -> bytes:
    """A .doc container: a WordDocument stream starting with the FIB magic (in big sectors),
    a 1Table stream and summary information (in the mini stream)."""
    fib = b"\xec\xa5\xc1\x00" + bytes(range(256)) * 20
    return build_ole2(
        [
            Stream("WordDocument", fib),
            Stream("1Table", b"\x00" * 700),
            Stream("\x05SummaryInformation", b"\xfe\xff" + b"\x00" * 200),
            *(extra or []),
        ]
    )


def excel_workbook(*, name: str = "Workbook", extra: list[Stream | Storage] | None = None) -> bytes:
    """An .xls container: a small Workbook stream (in the mini stream) starting with BOF."""
    bof = struct.pack("<HHHHHHII", 0x0809, 16, 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 0)
    eof = struct.pack("<HH", 0x000A, 0)
    return build_ole2([Stream(name, bof + b"\x00" * 900 + eof), *(extra or [])])
