"""The attachment service's upload quota is the store's: two services on one database (two
nodes) share each user's quota, a restarted one remembers it, and what an upload did not use
comes back when its body has been read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.attachments.blobstore import BlobStore
from chatd.core.errors import RateLimitedError
from chatd.core.upload_quota import UploadLimits
from chatd.crypto.keyring import KeyRing
from chatd.services.attachments import AttachmentService
from chatd.store.sqlite import SqliteStore
from tests.attachments import samples
from tests.conftest import make_users

MIB = 1024 * 1024
NOW = 1_767_225_600_000
DOCUMENT = samples.pdf_document("Compte rendu")


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def untouched() -> AsyncIterator[bytes]:
    raise AssertionError("a refused upload's body is never read")
    yield b""  # pragma: no cover - makes this an async generator


def node(store: SqliteStore, blobs: BlobStore, limits: UploadLimits) -> AttachmentService:
    return AttachmentService(
        store,
        blobs=blobs,
        max_bytes=limits.max_upload_bytes,
        ttl_seconds=3600,
        sweep_seconds=0,
        quota=limits,
        clock_ms=lambda: NOW,
    )


async def test_two_nodes_share_one_users_quota_and_a_restart_keeps_it(
    tmp_path: Path, ring: KeyRing
) -> None:
    limits = UploadLimits(uploads_per_minute=2, bytes_per_minute=4 * MIB, max_upload_bytes=MIB)
    path, blobs = tmp_path / "chatd.sqlite3", BlobStore(tmp_path / "attachments")
    async with SqliteStore(path, ring) as first, SqliteStore(path, ring) as second:
        alice, bob = await make_users(first, "alice", "bob")
        await node(first, blobs, limits).upload(alice, body(DOCUMENT), "a.pdf")
        await node(second, blobs, limits).upload(alice, body(DOCUMENT), "b.pdf")
        with pytest.raises(RateLimitedError) as refused:
            await node(first, blobs, limits).upload(alice, untouched(), "c.pdf")
        assert refused.value.details["seconds"] == 30
        assert "trop de fichiers" in refused.value.message_in("fr")
        await node(second, blobs, limits).upload(bob, body(DOCUMENT), "d.pdf")  # per user
    async with SqliteStore(path, ring) as restarted:
        with pytest.raises(RateLimitedError):
            await node(restarted, blobs, limits).upload(alice, untouched(), "e.pdf")


async def test_what_an_upload_did_not_use_comes_back(tmp_path: Path, ring: KeyRing) -> None:
    limits = UploadLimits(uploads_per_minute=10, bytes_per_minute=MIB, max_upload_bytes=MIB)
    blobs = BlobStore(tmp_path / "attachments")
    async with SqliteStore(tmp_path / "chatd.sqlite3", ring) as store:
        (alice,) = await make_users(store, "alice")
        service = node(store, blobs, limits)
        # No Content-Length: the whole minute's bytes are reserved, then all but the
        # document's come back, so the next upload of a declared size fits.
        await service.upload(alice, body(DOCUMENT), "a.pdf")
        reservation = await store.admit_upload(alice, MIB - len(DOCUMENT), limits, NOW)
        assert reservation.reserved == MIB - len(DOCUMENT)
        with pytest.raises(RateLimitedError):
            await store.admit_upload(alice, 1, limits, NOW)
