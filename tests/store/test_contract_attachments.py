"""Contract: attachment rows — recorded after their file, claimed with their message, served
only to those who may see that message, discarded when unsent, covered by rotation, shredding
and the row audit (every backend).  The files are the attachment service's: the tests write
and read them beside the store, as the service does (``tests/services/test_attachments.py``
covers removing and auditing them)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from chatd.attachments.blobstore import BlobStore
from chatd.core.conversations import CreateConversation, MessageBody, PostMessage
from chatd.core.errors import (
    AttachmentAlreadySent,
    AttachmentArchived,
    AttachmentExpired,
    AttachmentNotFound,
    ConflictError,
    ConversationNotFound,
    ThumbnailNotFound,
    UserNotFound,
    ValidationError,
)
from chatd.core.records import AttachmentInfo, NewAttachment
from chatd.crypto.attachment_keys import new_attachment_id
from chatd.crypto.envelope import new_data_key
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from chatd.store.postgres.store import PostgresStore
from chatd.store.sqlite import SqliteStore
from tests.conftest import add_member, create_conv, leave, make_users, msg_id, post
from tests.store.conftest import StoreFactory

HOUR_MS = 3_600_000
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 800 + b"\nstartxref\n0\n%%EOF\n"  # ~200 KiB: 4 chunks


class Clock:
    def __init__(self, now: int = 1_767_225_600_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """The attachment files, beside the store (the attachment service's in the server)."""
    return BlobStore(tmp_path / "attachments")


async def upload(
    store: Store,
    blobs: BlobStore,
    uploader: int,
    data: bytes = PDF,
    *,
    name: str = "compte rendu.pdf",
    ttl_ms: int = HOUR_MS,
    thumbnail: bytes | None = None,
) -> AttachmentInfo:
    """What the gateway does: the file first, then the row."""
    attachment_id, dek = new_attachment_id(), new_data_key()
    await asyncio.to_thread(blobs.write, attachment_id, dek, data)
    kind, mime = ("jpeg", "image/jpeg") if thumbnail else ("pdf", "application/pdf")
    size = (20, 10) if thumbnail else (None, None)
    return await store.record_attachment(
        NewAttachment(
            attachment_id,
            uploader,
            kind,
            mime,
            len(data),
            name,
            dek,
            ttl_ms,
            width=size[0],
            height=size[1],
            thumbnail=thumbnail,
        )
    )


async def send(store: Store, conv: int, sender: int, *ids: int, text: str = "voir PJ") -> int:
    result = await store.apply(
        PostMessage(conv, sender, MessageBody(text, attachments=ids), msg_id())
    )
    return result.first_seq


async def content(store: Store, blobs: BlobStore, user: int, attachment_id: int) -> bytes:
    access = await store.attachment_for_user(user, attachment_id)
    return await asyncio.to_thread(blobs.read_bytes, attachment_id, access.dek)


async def test_a_message_carries_its_attachments_descriptions(
    store: Store, blobs: BlobStore
) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    doc = await upload(store, blobs, a)
    photo = await upload(store, blobs, a, b"jpeg bytes", name="plaie.jpg", thumbnail=b"thumb")
    assert (doc.conv_id, doc.seq, doc.has_thumbnail) == (None, None, False)
    assert doc.expires_at == doc.created_at + HOUR_MS

    result = await store.apply(
        PostMessage(conv, a, MessageBody("", attachments=(photo.id, doc.id)), msg_id())
    )
    refs = result.events[0].payload["attachments"]
    assert refs == [
        {
            "id": f"{photo.id:016x}",
            "name": "plaie.jpg",
            "mime": "image/jpeg",
            "size": 10,
            "width": 20,
            "height": 10,
            "thumbnail": True,
        },
        {
            "id": f"{doc.id:016x}",
            "name": "compte rendu.pdf",
            "mime": "application/pdf",
            "size": len(PDF),
            "width": None,
            "height": None,
            "thumbnail": False,
        },
    ]
    # Readers get the same descriptions from the sealed payload, no join needed.
    (event,) = (await store.events_after(b, conv, 1, 10)).events
    assert event.payload["attachments"] == refs

    access = await store.attachment_for_user(b, doc.id)
    assert (access.info.conv_id, access.info.seq) == (conv, result.first_seq)
    assert access.info.name == "compte rendu.pdf" and access.thumbnail is None
    assert await content(store, blobs, b, doc.id) == PDF
    thumb = await store.attachment_for_user(b, photo.id, thumbnail=True)
    assert thumb.thumbnail == b"thumb"
    with pytest.raises(ThumbnailNotFound):
        await store.attachment_for_user(b, doc.id, thumbnail=True)


async def test_first_message_of_a_creation_carries_attachments(
    store: Store, blobs: BlobStore
) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    doc = await upload(store, blobs, a)
    result = await store.apply(
        CreateConversation(a, (b,), "Ordonnance", msg_id(), MessageBody("", attachments=(doc.id,)))
    )
    assert result.events[1].payload["attachments"][0]["id"] == f"{doc.id:016x}"
    assert (await store.attachment_for_user(b, doc.id)).info.seq == 2
    # A refused attachment refuses the whole creation: no conversation appears.
    mine = await upload(store, blobs, c)
    with pytest.raises(AttachmentNotFound):
        await store.apply(
            CreateConversation(a, (b,), "X", msg_id(), MessageBody("x", attachments=(mine.id,)))
        )
    assert [h.conv_id for h in await store.conversation_heads(b)] == [result.conv_id]


async def test_unknown_foreign_used_and_duplicated_attachments_are_refused(
    store: Store, blobs: BlobStore
) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    mine, theirs = await upload(store, blobs, a), await upload(store, blobs, b)
    last = (await store.conversation_heads(a))[0].last_visible_seq

    with pytest.raises(AttachmentNotFound) as unknown:
        await send(store, conv, a, new_attachment_id())
    assert unknown.value.code == "attachment_not_found"
    with pytest.raises(AttachmentNotFound):
        await send(store, conv, a, theirs.id)  # b's upload, even though a may see b's messages
    with pytest.raises(ValidationError):
        await send(store, conv, a, mine.id, mine.id)
    # Nothing was recorded by the failures, and the attachment is still free.
    assert (await store.conversation_heads(a))[0].last_visible_seq == last
    seq = await send(store, conv, a, mine.id)
    with pytest.raises(AttachmentAlreadySent) as used:
        await send(store, conv, a, mine.id)
    assert used.value.code == "attachment_already_sent"
    assert (await store.attachment_for_user(a, mine.id)).info.seq == seq
    # A refused attachment among good ones refuses the message: the good one stays free.
    fresh = await upload(store, blobs, a)
    with pytest.raises(AttachmentNotFound):
        await send(store, conv, a, fresh.id, theirs.id)
    assert (await store.attachment_for_user(a, fresh.id)).info.conv_id is None


async def test_a_retry_with_the_same_client_msg_id_is_not_a_second_use(
    store: Store, blobs: BlobStore
) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    doc = await upload(store, blobs, a)
    op = PostMessage(conv, a, MessageBody("", attachments=(doc.id,)), msg_id())
    first = await store.apply(op)
    again = await store.apply(op)
    assert again.duplicate and again.first_seq == first.first_seq


async def test_concurrent_sends_of_one_attachment_one_wins(store: Store, blobs: BlobStore) -> None:
    a, b = await make_users(store, "alice", "bob")
    convs = [(await create_conv(store, a, [b])).conv_id for _ in range(3)]
    doc = await upload(store, blobs, a)
    # Many at once: some land in one batch, some in the batch planned while one is in flight.
    outcomes = await asyncio.gather(
        *(send(store, convs[i % 3], a, doc.id) for i in range(30)), return_exceptions=True
    )
    won = [o for o in outcomes if isinstance(o, int)]
    assert len(won) == 1
    assert all(isinstance(o, AttachmentAlreadySent) for o in outcomes if not isinstance(o, int))
    # Staggered: later sends are planned while the first one's batch is being committed.
    doc = await upload(store, blobs, a)
    tasks = []
    for i in range(10):
        tasks.append(asyncio.ensure_future(send(store, convs[i % 3], a, doc.id)))
        await asyncio.sleep(0)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[0], int)
    assert all(isinstance(o, AttachmentAlreadySent) for o in outcomes[1:]), outcomes


async def test_expired_uploads_are_refused_then_swept(
    store_factory: StoreFactory, blobs: BlobStore
) -> None:
    clock = Clock()
    store = await store_factory.open(clock_ms=clock)
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    old = await upload(store, blobs, a, ttl_ms=HOUR_MS)
    sent = await upload(store, blobs, a, ttl_ms=HOUR_MS)
    await send(store, conv, a, sent.id)
    clock.now += HOUR_MS - 1
    young = await upload(store, blobs, a, ttl_ms=HOUR_MS)
    assert (await store.attachment_for_user(a, old.id)).info.id == old.id  # the uploader's own
    with pytest.raises(AttachmentNotFound):
        await store.attachment_for_user(b, old.id)  # unsent: nobody else
    clock.now += 1
    with pytest.raises(AttachmentExpired):
        await send(store, conv, a, old.id)
    with pytest.raises(AttachmentNotFound):
        await store.attachment_for_user(a, old.id)  # expired: not served any more

    assert await store.expired_attachments(clock.now) == [old.id]
    assert await store.sweep_attachments(clock.now) == [old.id]
    assert blobs.exists(old.id)  # the store touches no file: the attachment service does
    with pytest.raises(AttachmentNotFound):
        await send(store, conv, a, old.id)
    assert await store.sweep_attachments(clock.now) == []
    assert await content(store, blobs, b, sent.id) == PDF
    await send(store, conv, a, young.id)
    # Discarding only ever takes what is still unsent and expired at commit time.
    clock.now += 10 * HOUR_MS
    assert await store.discard_attachments([sent.id, young.id], clock.now) == []
    report = await store.verify()
    assert report.ok, report.problems
    assert report.attachments == 2


async def test_download_visibility_follows_membership_intervals(
    store: Store, blobs: BlobStore
) -> None:
    a, b, c, d = await make_users(store, "alice", "bob", "carol", "dave")
    conv = (await create_conv(store, a, [b, c])).conv_id
    before = await upload(store, blobs, a)
    await send(store, conv, a, before.id)
    await leave(store, conv, c)
    after = await upload(store, blobs, a)
    await send(store, conv, a, after.id)
    await add_member(store, conv, a, d)
    later = await upload(store, blobs, b)
    await send(store, conv, b, later.id)

    for user in (a, b):
        for att in (before, after, later):
            assert (await store.attachment_for_user(user, att.id)).info.id == att.id
    # The leaver keeps what came before the leave, and nothing after it.
    assert await content(store, blobs, c, before.id) == PDF
    for att in (after, later):
        with pytest.raises(AttachmentNotFound):
            await store.attachment_for_user(c, att.id)
    # Someone added later sees from their joined event on only.
    for att in (before, after):
        with pytest.raises(AttachmentNotFound):
            await store.attachment_for_user(d, att.id)
    assert (await store.attachment_for_user(d, later.id)).info.id == later.id
    # A stranger, and an unknown id, get the very same answer.
    (stranger,) = await make_users(store, "eve")
    errors = []
    for user, att_id in ((stranger, before.id), (a, new_attachment_id())):
        with pytest.raises(AttachmentNotFound) as caught:
            await store.attachment_for_user(user, att_id)
        errors.append((caught.value.code, caught.value.message))
    assert errors[0] == errors[1]


async def test_attachments_of_archived_messages_are_not_served(
    store_factory: StoreFactory, blobs: BlobStore
) -> None:
    store = await store_factory.open(visible_window=2)
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    old = await upload(store, blobs, a)
    await send(store, conv, a, old.id)
    await post(store, conv, b, "two")
    assert (await store.attachment_for_user(b, old.id)).info.id == old.id
    await post(store, conv, b, "three")
    with pytest.raises(AttachmentArchived):
        await store.attachment_for_user(b, old.id)


async def test_record_needs_a_known_uploader_and_a_fresh_id(store: Store, blobs: BlobStore) -> None:
    (a,) = await make_users(store, "alice")
    with pytest.raises(UserNotFound):
        await upload(store, blobs, 999)
    doc = await upload(store, blobs, a)
    with pytest.raises(ConflictError):
        await store.record_attachment(
            NewAttachment(doc.id, a, "pdf", "application/pdf", 1, "x.pdf", new_data_key(), 1000)
        )


async def test_rotation_rewraps_attachment_keys(
    store_factory: StoreFactory, ring: KeyRing, blobs: BlobStore
) -> None:
    store = await store_factory.open()
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    sent, unsent = await upload(store, blobs, a), await upload(store, blobs, a)
    await send(store, conv, a, sent.id)
    rotated = ring.with_new_active()
    assert await store.rewrap_data_keys(rotated) == 1 + 1 + 2  # directory, conv, attachments
    assert await store.kek_ids_in_use() == {rotated.active_id}
    await store.close()

    store = await store_factory.open(ring=rotated.without(ring.active_id))
    assert await content(store, blobs, b, sent.id) == PDF
    assert (await store.attachment_for_user(a, unsent.id)).info.name == "compte rendu.pdf"
    report = await store.verify()
    assert report.ok and report.attachments == 2, report.problems


async def test_shredding_a_conversation_destroys_its_attachments(
    store: Store, blobs: BlobStore
) -> None:
    a, b = await make_users(store, "alice", "bob")
    doomed = (await create_conv(store, a, [b])).conv_id
    kept = (await create_conv(store, a, [b])).conv_id
    gone, stays = await upload(store, blobs, a), await upload(store, blobs, a)
    await send(store, doomed, a, gone.id)
    await send(store, kept, a, stays.id)
    # The ids of the attachments whose keys went, for the attachment service to remove
    # their files; the store itself touches no file.
    assert await store.shred_conversation(doomed) == [gone.id]
    with pytest.raises(AttachmentNotFound):
        await store.attachment_for_user(a, gone.id)
    assert blobs.exists(gone.id)
    assert await content(store, blobs, b, stays.id) == PDF
    report = await store.verify()
    assert report.ok and report.attachments == 1, report.problems


async def test_schema_keeps_sent_attachments(store: Store, blobs: BlobStore) -> None:
    """The triggers refuse what no code path does (each backend its own SQL shell)."""
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    sent, unsent = await upload(store, blobs, a), await upload(store, blobs, a)
    seq = await send(store, conv, a, sent.id)
    other = await post(store, conv, b, "not a's message")
    refused: list[tuple[str, tuple[object, ...]]] = [
        ("DELETE FROM attachments WHERE id = ?", (sent.id,)),
        ("UPDATE attachments SET seq = ? WHERE id = ?", (seq + 1, sent.id)),
        ("UPDATE attachments SET size = 1 WHERE id = ?", (unsent.id,)),
        # Only a message of the uploader may refer to it.
        ("UPDATE attachments SET conv_id = ?, seq = ? WHERE id = ?", (conv, 1, unsent.id)),
        (
            "UPDATE attachments SET conv_id = ?, seq = ? WHERE id = ?",
            (conv, other.first_seq, unsent.id),
        ),
    ]
    allowed = ("DELETE FROM attachments WHERE id = ?", (unsent.id,))  # unsent: may go
    if isinstance(store, PostgresStore):
        await _postgres_shell(store.dsn, refused, allowed)
        return
    assert isinstance(store, SqliteStore)
    raw = sqlite3.connect(store.path, isolation_level=None)
    try:
        for sql, params in refused:
            with pytest.raises(sqlite3.IntegrityError):
                raw.execute(sql, params)
        raw.execute(*allowed)
    finally:
        raw.close()


async def _postgres_shell(
    dsn: str,
    refused: list[tuple[str, tuple[object, ...]]],
    allowed: tuple[str, tuple[object, ...]],
) -> None:
    def numbered(sql: str) -> str:
        parts = sql.split("?")
        return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))

    raw = await asyncpg.connect(dsn)
    try:
        for sql, params in [*refused, ("TRUNCATE attachments", ())]:
            with pytest.raises(asyncpg.IntegrityConstraintViolationError):
                await raw.execute(numbered(sql), *params)
        await raw.execute(numbered(allowed[0]), *allowed[1])
    finally:
        await raw.close()


async def test_a_non_member_cannot_send_even_with_their_own_upload(
    store: Store, blobs: BlobStore
) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b])).conv_id
    doc = await upload(store, blobs, c)
    with pytest.raises(ConversationNotFound):
        await send(store, conv, c, doc.id)
    assert (await store.attachment_for_user(c, doc.id)).info.conv_id is None
