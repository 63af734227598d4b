"""Two nodes on one database: sweeps, discards, claims, shreds and rotations at the same instant
(what SQLite's single writer never has to face; :mod:`chatd.store.postgres.keys` and
:mod:`chatd.store.postgres.attachments` say which lock makes each right)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from chatd.core.conversations import MessageBody, PostMessage
from chatd.core.errors import ConversationShreddedError, UnavailableError
from chatd.core.records import NewAttachment
from chatd.crypto.attachment_keys import new_attachment_id
from chatd.crypto.envelope import new_data_key
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.conftest import create_conv, make_users, msg_id, post

HOUR_MS = 3_600_000
START = 1_767_225_600_000


class Clock:
    def __init__(self, now: int = START) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


OpenNode = Callable[..., Awaitable[PostgresStore]]  # (clock=None): one more node, opened


@pytest.fixture
async def nodes(tmp_path: Path, ring: KeyRing, postgres_dsn: str) -> AsyncIterator[OpenNode]:
    opened: list[PostgresStore] = []

    async def open_node(clock: Clock | None = None) -> PostgresStore:
        node = PostgresStore(
            postgres_dsn,
            ring,
            checkpoint_log=tmp_path / "chatd.checkpoints",
            **({"clock_ms": clock} if clock else {}),
        )
        await node.open()
        opened.append(node)
        return node

    yield open_node
    for node in opened:
        await node.close()


async def record(node: PostgresStore, uploader: int, ttl_ms: int = HOUR_MS) -> int:
    new = NewAttachment(
        new_attachment_id(),
        uploader,
        "pdf",
        "application/pdf",
        10,
        "cr.pdf",
        new_data_key(),
        ttl_ms,
    )
    return (await node.record_attachment(new)).id


async def destroyed_attachment_keys(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM data_keys WHERE scope = 'attachment'"
                " AND destroyed_at IS NOT NULL"
            )
        )
    finally:
        await conn.close()


async def test_two_nodes_sweeping_and_discarding_at_once_take_each_row_once(
    nodes: OpenNode,
) -> None:
    clock = Clock()
    one, two = await nodes(clock), await nodes(clock)
    (alice,) = await make_users(one, "alice")
    ids = [await record(one if i % 2 else two, alice) for i in range(40)]
    clock.now += HOUR_MS
    outcomes = await asyncio.gather(
        one.discard_attachments(ids, clock.now),
        two.discard_attachments(ids[::-1], clock.now),
        one.sweep_attachments(clock.now),
        two.sweep_attachments(clock.now),
        two.discard_attachments(ids[10:30], clock.now),
    )
    taken = [i for gone in outcomes for i in gone]
    assert sorted(taken) == sorted(ids)  # every row once: none twice, none lost
    assert await one.expired_attachments(clock.now) == []
    assert await two.live_attachments(ids) == set()
    assert await destroyed_attachment_keys(one.dsn) == len(ids)


async def test_a_discard_racing_a_claim_on_another_node_leaves_one_winner(
    nodes: OpenNode,
) -> None:
    sender_clock = Clock()
    sender, sweeper = await nodes(sender_clock), await nodes()
    alice, bob = await make_users(sender, "alice", "bob")
    conv = (await create_conv(sender, alice, [bob])).conv_id
    claimed = discarded = 0
    for _ in range(12):
        attachment = await record(sender, alice, ttl_ms=HOUR_MS)
        sender_clock.now += HOUR_MS - 1  # the message is stamped just before the expiry
        op = PostMessage(conv, alice, MessageBody("PJ", attachments=(attachment,)), msg_id())
        sent, gone = await asyncio.gather(
            sender.apply(op),
            sweeper.discard_attachments([attachment], sender_clock.now + 1),
            return_exceptions=True,
        )
        sender_clock.now += 1
        assert not isinstance(gone, BaseException), gone
        if gone == [attachment]:
            assert isinstance(sent, Exception), "a discarded attachment was sent"
            assert await sweeper.live_attachments([attachment]) == set()
            discarded += 1
        else:
            assert gone == [] and not isinstance(sent, BaseException), sent
            access = await sweeper.attachment_for_user(bob, attachment)
            assert access.info.conv_id == conv
            claimed += 1
    assert claimed + discarded == 12


async def test_appends_on_one_node_and_a_shred_on_another_are_serialised(
    nodes: OpenNode,
) -> None:
    writer, retention = await nodes(), await nodes()
    alice, bob = await make_users(writer, "alice", "bob")
    conv = (await create_conv(writer, alice, [bob], first="start")).conv_id

    stored: list[int] = []
    unavailable = 0

    async def keep_posting(sender: int) -> None:
        nonlocal unavailable
        for n in range(500):  # until the shred refuses it
            try:
                stored.append((await post(writer, conv, sender, f"m{n}")).first_seq)
            except UnavailableError:  # a batch that met the shred first: retryable
                unavailable += 1
            except ConversationShreddedError:
                return
        raise AssertionError("the shred never came")

    async def shred_soon() -> list[int]:
        await asyncio.sleep(0.3)
        return await retention.shred_conversation(conv)

    *_, shredded = await asyncio.gather(*(keep_posting(u) for u in (alice, bob) * 3), shred_soon())
    assert shredded == []
    stored.sort()
    # Whatever was acknowledged is in the chain, densely, and nothing came after the shred.
    assert stored == list(range(3, 3 + len(stored)))
    conn = await asyncpg.connect(writer.dsn)
    try:
        last_seq = await conn.fetchval("SELECT last_seq FROM conversations WHERE id = $1", conv)
        live = await conn.fetchval(
            "SELECT count(*) FROM data_keys WHERE scope = 'conv' AND scope_id = $1"
            " AND destroyed_at IS NULL",
            conv,
        )
    finally:
        await conn.close()
    assert last_seq == 2 + len(stored) and live == 0
    for node in (writer, retention):
        with pytest.raises(ConversationShreddedError):
            await post(node, conv, alice, "after")


async def test_a_rotation_on_one_node_and_a_shred_on_another_both_finish(
    nodes: OpenNode, ring: KeyRing
) -> None:
    admin, retention = await nodes(), await nodes()
    alice, bob = await make_users(admin, "alice", "bob")
    doomed = (await create_conv(admin, alice, [bob], first="old")).conv_id
    kept = (await create_conv(admin, alice, [bob], first="new")).conv_id
    rotated = ring.with_new_active()
    count, shredded = await asyncio.gather(
        admin.rewrap_data_keys(rotated), retention.shred_conversation(doomed)
    )
    assert shredded == []
    assert count in (2, 3)  # the directory and kept, and doomed if it came first
    assert await admin.kek_ids_in_use() == {rotated.active_id}
    with pytest.raises(ConversationShreddedError):
        await admin.visible_window(bob, doomed)
    texts = [e.payload.get("text") for e in (await admin.visible_window(bob, kept)).events]
    assert texts == [None, "new"]
