"""The attachment service on a real store, without HTTP: the upload pipeline, what a refused
upload leaves behind (nothing), the sweep, the start-up clean-up, removing the files of
discarded and shredded attachments, and the file audit of ``chatd verify``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from chatd.attachments.blobstore import BlobStore
from chatd.core.conversations import MessageBody, PostMessage
from chatd.core.errors import (
    AttachmentExpired,
    AttachmentNotFound,
    AttachmentTooLarge,
    IntegrityError,
    UnsupportedFileType,
)
from chatd.core.records import AttachmentInfo, NewAttachment
from chatd.crypto.attachment_keys import new_attachment_id
from chatd.crypto.chunks import CHUNK_OVERHEAD, DEFAULT_CHUNK_SIZE, HEADER_BYTES
from chatd.crypto.envelope import new_data_key
from chatd.crypto.keyring import KeyRing
from chatd.services.attachments import AttachmentService, wall_clock_ms
from chatd.store.sqlite import SqliteStore
from tests.attachments import samples
from tests.conftest import create_conv, make_users, msg_id

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 800 + b"\nstartxref\n0\n%%EOF\n"  # ~200 KiB: 4 chunks


class Clock:
    def __init__(self, now: int = 1_767_225_600_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, ring: KeyRing) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "chatd.sqlite3", ring, synchronous="NORMAL") as opened:
        yield opened


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "attachments")


def service(
    store: SqliteStore, blobs: BlobStore, *, clock_ms: Callable[[], int] | int | None = None
) -> AttachmentService:
    if clock_ms is None:
        clock: Callable[[], int] = wall_clock_ms
    elif isinstance(clock_ms, int):
        clock = lambda: clock_ms  # noqa: E731 - a fixed instant
    else:
        clock = clock_ms
    return AttachmentService(
        store,
        blobs=blobs,
        max_bytes=1024 * 1024,
        ttl_seconds=86_400,
        sweep_seconds=0,
        clock_ms=clock,
    )


async def body(data: bytes, piece: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def leftovers(blobs: BlobStore) -> list[Path]:
    root = blobs.root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def upload(
    store: SqliteStore, blobs: BlobStore, uploader: int, *, ttl_ms: int = HOUR_MS
) -> AttachmentInfo:
    """What the service does, with a chosen time to live: the file first, then the row."""
    attachment_id, dek = new_attachment_id(), new_data_key()
    await asyncio.to_thread(blobs.write, attachment_id, dek, PDF)
    return await store.record_attachment(
        NewAttachment(
            attachment_id, uploader, "pdf", "application/pdf", len(PDF), "cr.pdf", dek, ttl_ms
        )
    )


async def send(store: SqliteStore, conv: int, sender: int, *ids: int) -> int:
    result = await store.apply(
        PostMessage(conv, sender, MessageBody("voir PJ", attachments=ids), msg_id())
    )
    return result.first_seq


async def content(store: SqliteStore, blobs: BlobStore, user: int, attachment_id: int) -> bytes:
    access = await store.attachment_for_user(user, attachment_id)
    return await asyncio.to_thread(blobs.read_bytes, attachment_id, access.dek)


# ----------------------------------------------------------------------------- pipeline


async def test_upload_seals_and_records(store: SqliteStore, blobs: BlobStore) -> None:
    (alice,) = await make_users(store, "alice")
    info = await service(store, blobs).upload(
        alice, body(samples.jpeg_with_gps()), "../../IMG.JPEG"
    )
    assert (info.kind, info.mime, info.name, info.has_thumbnail) == (
        "jpeg",
        "image/jpeg",
        "IMG.jpg",
        True,
    )
    assert leftovers(blobs) == [blobs.path(info.id)]  # the spool is empty again
    access = await service(store, blobs).find(alice, info.id, thumbnail=True)
    stored = blobs.read_bytes(info.id, access.dek)
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
    store: SqliteStore, blobs: BlobStore, data: bytes, error: type[Exception]
) -> None:
    (alice,) = await make_users(store, "alice")
    with pytest.raises(error):
        await service(store, blobs).upload(alice, body(data, 64 * 1024), "x.pdf")
    assert leftovers(blobs) == []
    assert await store.expired_attachments(2**62) == []


async def test_sweep_discards_expired_uploads_and_old_temp_files(
    store: SqliteStore, blobs: BlobStore
) -> None:
    (alice,) = await make_users(store, "alice")
    info = await service(store, blobs).upload(alice, body(samples.pdf_document()), "a.pdf")
    assert await service(store, blobs).sweep() == []  # not expired yet
    later = service(store, blobs, clock_ms=info.expires_at)
    assert await later.sweep() == [info.id]
    assert leftovers(blobs) == []
    with pytest.raises(AttachmentNotFound):
        await later.find(alice, info.id)


async def test_start_removes_unfinished_uploads(store: SqliteStore, blobs: BlobStore) -> None:
    spooled = blobs.spool_path()
    spooled.write_bytes(b"half an upload, in clear")
    await service(store, blobs).start()
    assert not spooled.exists()


# ----------------------------------------------------------------------------- removing files


async def test_expired_uploads_are_refused_then_swept_with_their_files(
    tmp_path: Path, ring: KeyRing, blobs: BlobStore, clock: Clock
) -> None:
    async with SqliteStore(tmp_path / "clocked.sqlite3", ring, clock_ms=clock) as store:
        files = service(store, blobs, clock_ms=clock)
        a, b = await make_users(store, "alice", "bob")
        conv = (await create_conv(store, a, [b])).conv_id
        old = await upload(store, blobs, a, ttl_ms=HOUR_MS)
        sent = await upload(store, blobs, a, ttl_ms=HOUR_MS)
        await send(store, conv, a, sent.id)
        clock.now += HOUR_MS - 1
        young = await upload(store, blobs, a, ttl_ms=HOUR_MS)
        clock.now += 1
        with pytest.raises(AttachmentExpired):
            await send(store, conv, a, old.id)

        assert await files.sweep(clock.now) == [old.id]
        assert not blobs.exists(old.id)
        assert blobs.exists(sent.id) and blobs.exists(young.id)
        with pytest.raises(AttachmentNotFound):
            await send(store, conv, a, old.id)
        assert await files.sweep(clock.now) == []
        assert await content(store, blobs, b, sent.id) == PDF
        await send(store, conv, a, young.id)
        clock.now += 10 * HOUR_MS
        assert await files.sweep(clock.now) == []
        report = await files.verify()
        assert report.ok, report.problems
        assert report.attachments == 2


async def test_shredding_then_deleting_removes_the_files(
    store: SqliteStore, blobs: BlobStore
) -> None:
    a, b = await make_users(store, "alice", "bob")
    doomed = (await create_conv(store, a, [b])).conv_id
    kept = (await create_conv(store, a, [b])).conv_id
    gone, stays = await upload(store, blobs, a), await upload(store, blobs, a)
    await send(store, doomed, a, gone.id)
    await send(store, kept, a, stays.id)
    files = service(store, blobs)
    # What `chatd retention run --apply` does: the keys (the store), then the files.
    assert await files.delete_files(await store.shred_conversation(doomed)) == 1
    with pytest.raises(AttachmentNotFound):
        await store.attachment_for_user(a, gone.id)
    assert not blobs.exists(gone.id)
    assert await content(store, blobs, b, stays.id) == PDF
    report = await files.verify()
    assert report.ok and report.attachments == 1, report.problems


async def test_verify_removes_the_file_left_by_a_shred(
    store: SqliteStore, blobs: BlobStore
) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    doc = await upload(store, blobs, a)
    await send(store, conv, a, doc.id)
    await store.shred_conversation(conv)  # a crash before the files were removed
    assert blobs.exists(doc.id)
    report = await service(store, blobs).verify()
    assert report.ok and report.attachments == 0, report.problems
    assert not blobs.exists(doc.id)
    assert [str(w) for w in report.warnings] == [
        f"attachment file {doc.id:016x} of a shredded conversation; removed"
    ]


# ----------------------------------------------------------------------------- the file audit


def corrupt(blobs: BlobStore, attachment_id: int, chunk: int) -> None:
    path = blobs.path(attachment_id)
    offset = HEADER_BYTES + chunk * (DEFAULT_CHUNK_SIZE + CHUNK_OVERHEAD) + 20
    with path.open("r+b") as fp:
        fp.seek(offset)
        byte = fp.read(1)
        fp.seek(offset)
        fp.write(bytes([byte[0] ^ 0x01]))


async def test_verify_names_the_attachment_and_its_first_bad_chunk(
    store: SqliteStore, blobs: BlobStore
) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    tampered, truncated, missing, fine = [await upload(store, blobs, a) for _ in range(4)]
    seq = await send(store, conv, a, tampered.id, truncated.id, missing.id)
    corrupt(blobs, tampered.id, 2)
    path = blobs.path(truncated.id)
    os.truncate(path, HEADER_BYTES + 3 * (DEFAULT_CHUNK_SIZE + CHUNK_OVERHEAD))
    blobs.path(missing.id).unlink()

    assert (await store.verify()).ok  # the rows are sound: only the files are broken
    report = await service(store, blobs).verify()
    assert not report.ok and report.attachments == 4
    by_id = {p.attachment_id: p for p in report.problems}
    assert set(by_id) == {tampered.id, truncated.id, missing.id}
    assert "first bad chunk 2" in by_id[tampered.id].reason
    assert "first bad chunk 3" in by_id[truncated.id].reason
    assert by_id[missing.id].reason == f"attachment {missing.id:016x}: its file is missing"
    assert (by_id[tampered.id].conv_id, by_id[tampered.id].seq) == (conv, seq)
    assert str(by_id[tampered.id]).startswith(
        f"conversation {conv}, seq {seq}, attachment {tampered.id:016x}: first bad chunk 2"
    )
    in_order = sorted([tampered.id, truncated.id, missing.id])
    assert [p.attachment_id for p in report.problems] == in_order  # in attachment order
    # Reading the tampered file fails loudly at that chunk, never returns altered bytes.
    with pytest.raises(IntegrityError, match="Chunk 2"):
        await content(store, blobs, b, tampered.id)
    assert await content(store, blobs, a, fine.id) == PDF  # its own unsent upload


async def test_verify_sweeps_orphan_files(store: SqliteStore, blobs: BlobStore) -> None:
    (a,) = await make_users(store, "alice")
    kept = await upload(store, blobs, a)
    old_orphan, new_orphan = new_attachment_id(), new_attachment_id()
    for orphan in (old_orphan, new_orphan):
        blobs.write(orphan, new_data_key(), b"left by a crash")
    stale = blobs.path(old_orphan)
    os.utime(stale, (stale.stat().st_atime - 7200, stale.stat().st_mtime - 7200))

    report = await service(store, blobs).verify()
    assert report.ok, report.problems
    assert not blobs.exists(old_orphan)
    assert blobs.exists(new_orphan) and blobs.exists(kept.id)
    warnings = [str(warning) for warning in report.warnings]  # English
    assert any(f"{old_orphan:016x} had no row; removed" in w for w in warnings)
    assert any(f"{new_orphan:016x} has no row yet" in w for w in warnings)
    french = [warning.render("fr") for warning in report.warnings]
    assert f"fichier de pièce jointe {old_orphan:016x} sans ligne\u00a0; supprimé" in french


async def test_the_file_of_a_discarded_attachment_is_not_a_problem(
    store: SqliteStore, blobs: BlobStore
) -> None:
    (a,) = await make_users(store, "alice")
    doc = await upload(store, blobs, a, ttl_ms=1)
    blobs.path(doc.id).unlink()
    # What the audit rechecks before it reports a missing file: is the row still live?
    assert await store.live_attachments([doc.id]) == {doc.id}
    await store.discard_attachments([doc.id], 2**62)
    assert await store.live_attachments([doc.id]) == set()
    audit = await service(store, blobs).audit_files()
    assert audit.problems == ()
