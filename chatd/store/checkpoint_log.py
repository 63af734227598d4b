"""The checkpoint log on disk: one file, outside the database, appended to and never rewritten.

Each record is one line (:mod:`chatd.core.checkpoints`), written with one ``write`` and
fsynced before the append returns; the directory is fsynced when the file is created.  An
exclusive ``flock`` on the file serialises the processes that append to it (the server, and
an admin command working beside it), and each one reads what the others appended before it
appends (:meth:`CheckpointLog.read_from`).

A crash can leave a last line without its newline: it was never acknowledged, so readers
ignore it and the next append cuts it off first.  Everything else that is wrong with the file
is reported by the reader, never repaired: the log is evidence.

The file is kept where ``CHATD_CHECKPOINT_LOG`` says (by default beside the database).  Put it
on another disk, or ship it off the host (``chatd checkpoints export``): an attacker who can
rewrite both the database and this file can roll both back together, but not an off-host copy.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from chatd.core.checkpoint_audit import RawLine
from chatd.core.checkpoints import BadRecord, RecordKind, parse_record

_BLOCK = 1 << 16


def parse_line(offset: int, raw: bytes) -> RawLine:
    try:
        return RawLine(raw, parse_record(raw), offset=offset)
    except BadRecord as exc:
        return RawLine(raw, None, str(exc), offset)


class CheckpointLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def acquire(self) -> int:
        """Open (create) the log and take its exclusive flock, waiting for another process
        to release it: run it in a thread.  :meth:`release` gives it back."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if created:
                _fsync_dir(self.path.parent)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing the descriptor releases the flock

    def read_from(self, offset: int = 0) -> tuple[list[RawLine], int]:
        """Every complete line from ``offset`` on, and the offset just after the last one
        (a final fragment without its newline is left out)."""
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], 0
        lines, position = [], offset
        for raw in data.split(b"\n")[:-1]:
            lines.append(parse_line(position, raw))
            position += len(raw) + 1
        return lines, position

    def read_tail(self) -> tuple[list[RawLine], int]:
        """The lines from the last base (or rewind) record on, and the offset after the last
        line; every line if none is a base.  The file is read backwards in blocks, so that
        starting does not read a long log whole."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], 0
        found: list[RawLine] = []  # last line first
        end: int | None = None
        position, buffer = size, b""  # buffer: the bytes [position, start of found[-1])
        with self.path.open("rb") as f:
            while position > 0:
                step = min(_BLOCK, position)
                position -= step
                f.seek(position)
                buffer = f.read(step) + buffer
                if end is None:
                    cut = buffer.rfind(b"\n")
                    if cut < 0:
                        continue  # still inside a torn last fragment
                    end, buffer = position + cut + 1, buffer[: cut + 1]
                parts = buffer.split(b"\n")[:-1]
                complete = parts if position == 0 else parts[1:]
                start = position + len(buffer)
                for raw in reversed(complete):
                    start -= len(raw) + 1
                    line = parse_line(start, raw)
                    found.append(line)
                    if line.record is not None and line.record.kind is not RecordKind.DELTA:
                        return found[::-1], end
                buffer = b"" if position == 0 else parts[0] + b"\n"
        return found[::-1], end or 0

    def append(self, fd: int, line: bytes, end: int) -> int:
        """Append ``line`` at ``end`` (cutting off a torn fragment after it) and fsync;
        return the new end.  ``fd`` comes from :meth:`locked`."""
        size = os.fstat(fd).st_size
        if size != end:
            # Only a torn fragment may follow: never cut off a complete line.
            if size < end or b"\n" in os.pread(fd, size - end, end):
                raise OSError(f"the checkpoint log changed under its lock ({size} != {end})")
            os.ftruncate(fd, end)
        os.lseek(fd, end, os.SEEK_SET)
        data = line + b"\n"
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
        return end + len(data)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
