"""Encrypted files on disk: atomic writes, crash leftovers, ranges, and loud damage."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.attachments.blobstore import BlobStore
from chatd.core.errors import AttachmentFileMissing, IntegrityError
from chatd.crypto.chunks import CHUNK_OVERHEAD, HEADER_BYTES
from chatd.crypto.envelope import new_data_key

CHUNK = 1024
AID = 0x2B12_3456_789A_BCDE
DATA = os.urandom(5 * CHUNK + 300)  # 6 chunks, the last partial


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "attachments", chunk_size=CHUNK)


@pytest.fixture
def dek() -> bytes:
    return new_data_key()


def chunk_offset(index: int) -> int:
    return HEADER_BYTES + index * (CHUNK + CHUNK_OVERHEAD)


def test_write_and_read_back(store: BlobStore, dek: bytes) -> None:
    blob = store.write(AID, dek, DATA)
    assert blob.path == store.root / "2b" / "2b123456789abcde"
    assert (blob.size, blob.sealed_size) == (len(DATA), blob.path.stat().st_size)
    assert DATA[:100] not in blob.path.read_bytes()  # sealed, not in clear
    assert store.read_bytes(AID, dek) == DATA
    assert [len(c) for c in store.iter_chunks(AID, dek)] == [CHUNK] * 5 + [300]
    assert store.verify(AID, dek).ok
    assert list(store.ids()) == [AID] and store.exists(AID)


def test_sources_bytes_path_and_stream_give_the_same_plaintext(
    store: BlobStore, dek: bytes, tmp_path: Path
) -> None:
    spooled = tmp_path / "upload"
    spooled.write_bytes(DATA)
    store.write(1, dek, DATA)
    store.write(2, dek, spooled)
    store.write(3, dek, iter([DATA[:7], DATA[7:3000], b"", DATA[3000:]]))
    assert {store.read_bytes(i, dek) for i in (1, 2, 3)} == {DATA}


def test_files_are_private(store: BlobStore, dek: bytes) -> None:
    blob = store.write(AID, dek, b"x")
    assert stat.S_IMODE(blob.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(blob.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


def test_an_existing_file_is_never_replaced(store: BlobStore, dek: bytes) -> None:
    store.write(AID, dek, b"first")
    with pytest.raises(FileExistsError):
        store.write(AID, dek, b"second")
    assert store.read_bytes(AID, dek) == b"first"


def test_failed_write_leaves_nothing(store: BlobStore, dek: bytes) -> None:
    def broken() -> Iterator[bytes]:
        yield DATA[:3000]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.write(AID, dek, broken())
    assert not store.exists(AID)
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_crash_mid_write_leaves_only_a_temp_file_that_the_sweep_removes(
    store: BlobStore, tmp_path: Path
) -> None:
    """A real process killed (os._exit) in the middle of a write."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from chatd.attachments.blobstore import BlobStore

        def source():
            yield b"a" * 5000
            os._exit(9)

        BlobStore(Path({str(store.root)!r}), chunk_size={CHUNK}).write({AID}, b"k" * 32, source())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == 9
    temps = [p for p in store.root.rglob("*") if p.is_file()]
    assert len(temps) == 1 and temps[0].name.endswith(".tmp") and temps[0].stat().st_size > 0
    assert not store.exists(AID) and list(store.ids()) == []
    with pytest.raises(AttachmentFileMissing):
        store.read_bytes(AID, b"k" * 32)
    assert store.sweep_temp_files() == temps
    assert not temps[0].exists()


def test_sweep_spares_recent_temps_and_empties_the_spool(store: BlobStore, dek: bytes) -> None:
    store.write(AID, dek, b"kept")
    spooled = store.spool_path()
    spooled.write_bytes(b"plaintext upload")
    old_tmp = store.path(AID).with_name(".2b123456789abcde.1.tmp")
    new_tmp = store.path(AID).with_name(".2b123456789abcde.2.tmp")
    old_tmp.write_bytes(b"x")
    new_tmp.write_bytes(b"x")
    os.utime(old_tmp, (1_000_000, 1_000_000))
    os.utime(spooled, (1_000_000, 1_000_000))
    removed = store.sweep_temp_files(older_than=3600)
    assert sorted(removed) == sorted([old_tmp, spooled])
    assert new_tmp.exists() and store.read_bytes(AID, dek) == b"kept"
    assert store.sweep_temp_files() == [new_tmp]
    assert store.read_bytes(AID, dek) == b"kept"


@pytest.mark.parametrize(
    ("start", "stop"),
    [(0, 10), (CHUNK - 5, CHUNK + 5), (3 * CHUNK, 4 * CHUNK), (5 * CHUNK + 299, 10**9), (50, 50)],
)
def test_range_reads(store: BlobStore, dek: bytes, start: int, stop: int) -> None:
    store.write(AID, dek, DATA)
    assert b"".join(store.iter_range(AID, dek, start, stop)) == DATA[start:stop]
    with store.open(AID, dek) as opener:
        assert opener.size == len(DATA)


def test_tampered_chunk_fails_reading_and_verify_names_it(store: BlobStore, dek: bytes) -> None:
    path = store.write(AID, dek, DATA).path
    raw = bytearray(path.read_bytes())
    raw[chunk_offset(3) + 100] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="Chunk 3"):
        store.read_bytes(AID, dek)
    pieces = store.iter_chunks(AID, dek)
    assert [next(pieces) for _ in range(3)] == [DATA[i * CHUNK : (i + 1) * CHUNK] for i in range(3)]
    with pytest.raises(IntegrityError):
        next(pieces)  # never a byte of the damaged chunk
    verdict = store.verify(AID, dek)
    assert not verdict.ok and verdict.bad_chunk == 3 and "Chunk 3" in str(verdict.problem)


def test_truncated_file_fails_and_verify_names_the_missing_chunk(
    store: BlobStore, dek: bytes
) -> None:
    path = store.write(AID, dek, DATA).path
    with path.open("r+b") as fp:
        fp.truncate(chunk_offset(4))  # chunks 0-3 intact, 4 and 5 gone
    with pytest.raises(IntegrityError, match="truncated after chunk 3"):
        store.read_bytes(AID, dek)
    verdict = store.verify(AID, dek)
    assert verdict.bad_chunk == 4 and "truncated" in str(verdict.problem)
    with path.open("r+b") as fp:
        fp.truncate(chunk_offset(2) + 17)  # cut inside chunk 2
    assert store.verify(AID, dek).bad_chunk == 2


def test_swapped_chunks_and_foreign_chunks_are_named(store: BlobStore, dek: bytes) -> None:
    path = store.write(AID, dek, DATA).path
    raw = path.read_bytes()
    one, two = (raw[chunk_offset(i) : chunk_offset(i + 1)] for i in (1, 2))
    path.write_bytes(raw[: chunk_offset(1)] + two + one + raw[chunk_offset(3) :])
    assert store.verify(AID, dek).bad_chunk == 1

    other = store.write(AID + 1, dek, DATA).path.read_bytes()  # same key, same plaintext
    path.write_bytes(raw[: chunk_offset(4)] + other[chunk_offset(4) :])
    assert store.verify(AID, dek).bad_chunk == 4


def test_damaged_header_wrong_key_and_missing_file(store: BlobStore, dek: bytes) -> None:
    path = store.write(AID, dek, DATA).path
    assert store.verify(AID, new_data_key()).bad_chunk == 0
    raw = bytearray(path.read_bytes())
    raw[0:4] = b"XXXX"
    path.write_bytes(bytes(raw))
    verdict = store.verify(AID, dek)
    assert not verdict.ok and verdict.bad_chunk is None and "header" in str(verdict.problem)
    assert store.delete(AID) and not store.delete(AID)
    verdict = store.verify(AID, dek)
    assert not verdict.ok and "missing" in str(verdict.problem)
    with pytest.raises(AttachmentFileMissing):
        store.read_bytes(AID, dek)


def test_ids_are_bounded() -> None:
    store = BlobStore(Path("/nonexistent"))
    for bad in (0, -1, 2**63):
        with pytest.raises(ValueError):
            store.path(bad)
    assert list(store.ids()) == [] and store.sweep_temp_files() == []


def test_missing_data_directory_is_created(tmp_path: Path, dek: bytes) -> None:
    store = BlobStore(tmp_path / "var" / "data" / "attachments")
    store.write(AID, dek, b"x")
    assert store.read_bytes(AID, dek) == b"x"
