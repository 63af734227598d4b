"""The attachment service on a real store, without HTTP: the upload pipeline, what a refused
upload leaves behind (nothing), the sweep, and the start-up clean-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.attachments.service import AttachmentService, wall_clock_ms
from chatd.core.errors import AttachmentNotFound, AttachmentTooLarge, UnsupportedFileType
from chatd.crypto.keyring import KeyRing
from chatd.store.sqlite import SqliteStore
from tests.attachments import samples
from tests.conftest import make_users

DAY_MS = 86_400_000


@pytest.fixture
async def store(tmp_path: Path, ring: KeyRing) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "chatd.sqlite3", ring, synchronous="NORMAL") as opened:
        yield opened


def service(store: SqliteStore, *, clock_ms: int | None = None) -> AttachmentService:
    clock = wall_clock_ms if clock_ms is None else (lambda: clock_ms)
    return AttachmentService(
        store, max_bytes=1024 * 1024, ttl_seconds=86_400, sweep_seconds=0, clock_ms=clock
    )


async def body(data: bytes, piece: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def leftovers(store: SqliteStore) -> list[Path]:
    root = store.blobs.root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_upload_seals_and_records(store: SqliteStore) -> None:
    (alice,) = await make_users(store, "alice")
    info = await service(store).upload(alice, body(samples.jpeg_with_gps()), "../../IMG.JPEG")
    assert (info.kind, info.mime, info.name, info.has_thumbnail) == (
        "jpeg",
        "image/jpeg",
        "IMG.jpg",
        True,
    )
    assert leftovers(store) == [store.blobs.path(info.id)]  # the spool is empty again
    access = await service(store).find(alice, info.id, thumbnail=True)
    stored = store.blobs.read_bytes(info.id, access.dek)
    assert len(stored) == info.size and samples.SECRET not in stored
    assert access.thumbnail is not None and access.thumbnail[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (samples.SVG, UnsupportedFileType),
        (b"%PDF-1.4\n" + b"x" * (1024 * 1024), AttachmentTooLarge),
    ],
)
async def test_refused_uploads_leave_no_file(
    store: SqliteStore, data: bytes, error: type[Exception]
) -> None:
    (alice,) = await make_users(store, "alice")
    with pytest.raises(error):
        await service(store).upload(alice, body(data, 64 * 1024), "x.pdf")
    assert leftovers(store) == []
    assert await store.expired_attachments(2**62) == []


async def test_sweep_discards_expired_uploads_and_old_temp_files(store: SqliteStore) -> None:
    (alice,) = await make_users(store, "alice")
    info = await service(store).upload(alice, body(samples.pdf_document()), "a.pdf")
    assert await service(store).sweep() == []  # not expired yet
    later = service(store, clock_ms=info.expires_at)
    assert await later.sweep() == [info.id]
    assert leftovers(store) == []
    with pytest.raises(AttachmentNotFound):
        await later.find(alice, info.id)


async def test_start_removes_unfinished_uploads(store: SqliteStore) -> None:
    spooled = store.blobs.spool_path()
    spooled.write_bytes(b"half an upload, in clear")
    await service(store).start()
    assert not spooled.exists()
