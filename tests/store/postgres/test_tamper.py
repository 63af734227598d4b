"""Tampering with the PostgreSQL database is found by ``store.verify()``.

The counterpart of tests/store/test_tamper.py: the attacker is the owner role (psql, not the
key file).  It disables the triggers in its way, edits rows, and enables them again, so that
the schema check has nothing to say and only the rows can tell.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.conftest import create_conv, leave, make_users, post

FIRST, SECOND = 1, 2  # conversation ids: 6 events in the first, 4 in the second
TABLES = ("events", "data_keys", "memberships", "conversations", "users", "idempotency_keys")

Tamper = Callable[[asyncpg.Connection], Awaitable[None]]


def store_on(dsn: str, tmp_path: Path, ring: KeyRing) -> PostgresStore:
    return PostgresStore(dsn, ring, checkpoint_log=tmp_path / "chatd.checkpoints")


async def build(dsn: str, tmp_path: Path, ring: KeyRing) -> None:
    async with store_on(dsn, tmp_path, ring) as store:
        a, b, c = await make_users(store, "alice", "bob", "carol")
        first = await create_conv(store, a, [b], first="one")
        second = await create_conv(store, a, [c], first="other one")
        assert (first.conv_id, second.conv_id) == (FIRST, SECOND)
        for i in range(4):
            await post(store, FIRST, b if i % 2 else a, f"first conv {i}")
        await post(store, SECOND, c, "other two")
        await leave(store, SECOND, c)
        assert (await store.verify()).ok


async def tampered(dsn: str, tamper: Tamper) -> None:
    """The owner's edits, with the triggers disabled around them and enabled after."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for table in TABLES:
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await tamper(conn)
            for table in TABLES:
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await conn.close()


async def ciphertext(conn: asyncpg.Connection, conv: int, seq: int) -> bytes:
    return bytes(
        await conn.fetchval(
            "SELECT ciphertext FROM events WHERE conv_id = $1 AND seq = $2", conv, seq
        )
    )


async def set_ciphertext(conn: asyncpg.Connection, conv: int, seq: int, value: bytes) -> None:
    await conn.execute(
        "UPDATE events SET ciphertext = $1 WHERE conv_id = $2 AND seq = $3", value, conv, seq
    )


async def rechain(conn: asyncpg.Connection, conv: int) -> None:
    """Recompute every hash and the head, so that only the seals can tell."""
    prev = GENESIS
    for seq, kind, ct in await conn.fetch(
        "SELECT seq, kind, ciphertext FROM events WHERE conv_id = $1 ORDER BY seq", conv
    ):
        digest = link_hash(prev, conv, seq, kind, bytes(ct))
        await conn.execute(
            "UPDATE events SET prev_hash = $1, hash = $2 WHERE conv_id = $3 AND seq = $4",
            prev,
            digest,
            conv,
            seq,
        )
        prev = digest
    await conn.execute("UPDATE conversations SET last_hash = $1 WHERE id = $2", prev, conv)


async def flip_byte(conn: asyncpg.Connection) -> None:
    ct = bytearray(await ciphertext(conn, FIRST, 3))
    ct[len(ct) // 2] ^= 0x01
    await set_ciphertext(conn, FIRST, 3, bytes(ct))


async def delete_middle(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM events WHERE conv_id = $1 AND seq = 3", FIRST)


async def delete_last(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM events WHERE conv_id = $1 AND seq = 6", FIRST)


async def swap_two(conn: asyncpg.Connection) -> None:
    two, four = await ciphertext(conn, FIRST, 2), await ciphertext(conn, FIRST, 4)
    await set_ciphertext(conn, FIRST, 2, four)
    await set_ciphertext(conn, FIRST, 4, two)


async def flip_byte_and_rechain(conn: asyncpg.Connection) -> None:
    await flip_byte(conn)
    await rechain(conn, FIRST)


async def copy_across_and_rechain(conn: asyncpg.Connection) -> None:
    await set_ciphertext(conn, FIRST, 2, await ciphertext(conn, SECOND, 2))
    await rechain(conn, FIRST)


async def relabel_kind_and_rechain(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE events SET kind = 'renamed' WHERE conv_id = $1 AND seq = 4", FIRST)
    await rechain(conn, FIRST)


async def tamper_data_key(conn: asyncpg.Connection) -> None:
    blob = bytearray(
        await conn.fetchval(
            "SELECT wrapped FROM data_keys WHERE scope = 'conv' AND scope_id = $1", SECOND
        )
    )
    blob[-1] ^= 0x80
    await conn.execute(
        "UPDATE data_keys SET wrapped = $1 WHERE scope = 'conv' AND scope_id = $2",
        bytes(blob),
        SECOND,
    )


async def tamper_name(conn: asyncpg.Connection) -> None:
    name = bytearray(await conn.fetchval("SELECT name FROM conversations WHERE id = $1", SECOND))
    name[-1] ^= 0x01
    await conn.execute("UPDATE conversations SET name = $1 WHERE id = $2", bytes(name), SECOND)


async def grant_membership(conn: asyncpg.Connection) -> None:
    """Carol (user 3) given the first conversation's history, with bob's row's MAC."""
    await conn.execute(
        "INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq, mac)"
        " SELECT conv_id, 3, joined_seq, left_seq, mac FROM memberships"
        " WHERE conv_id = $1 AND user_id = 2",
        FIRST,
    )


async def reopen_membership(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "UPDATE memberships SET left_seq = NULL WHERE conv_id = $1 AND user_id = 3", SECOND
    )


async def forge_sender(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE events SET sender = 2 WHERE conv_id = $1 AND seq = 3", FIRST)


async def forge_time(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE events SET ts = ts - 86400000 WHERE conv_id = $1 AND seq = 3", FIRST)


async def back_date_activity(conn: asyncpg.Connection) -> None:
    """An old-looking last activity gets a live conversation shredded by retention."""
    await conn.execute("UPDATE conversations SET last_event_at = 1 WHERE id = $1", SECOND)


async def drop_operation(conn: asyncpg.Connection) -> None:
    """The record of the post at seq 3 removed (a retry would be appended again)."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE scope_conv = $1 AND first_seq = 3", FIRST
    )


async def widen_operation(conn: asyncpg.Connection) -> None:
    """The post at seq 3 made to cover seq 4 too (a retry would answer with both)."""
    await conn.execute(
        "UPDATE idempotency_keys SET last_seq = 4 WHERE scope_conv = $1 AND first_seq = 3", FIRST
    )


CASES: list[tuple[str, Tamper, int, int, str]] = [
    ("flip-byte", flip_byte, FIRST, 3, "hash mismatch"),
    ("delete-middle", delete_middle, FIRST, 3, "missing"),
    ("delete-last", delete_last, FIRST, 6, "rows removed"),
    ("swap-ciphertexts", swap_two, FIRST, 2, "hash mismatch"),
    ("flip-byte-rechained", flip_byte_and_rechain, FIRST, 3, "seal does not open"),
    ("copy-across-rechained", copy_across_and_rechain, FIRST, 2, "seal does not open"),
    ("relabel-kind-rechained", relabel_kind_and_rechain, FIRST, 4, "seal does not open"),
    ("data-key", tamper_data_key, SECOND, 0, "data key"),
    ("conversation-name", tamper_name, SECOND, 0, "name"),
    ("grant-membership", grant_membership, FIRST, 1, "membership"),
    ("reopen-membership", reopen_membership, SECOND, 1, "membership"),
    ("forged-sender", forge_sender, FIRST, 3, "seal does not open"),
    ("forged-time", forge_time, FIRST, 3, "seal does not open"),
    ("back-dated-activity", back_date_activity, SECOND, 0, "last activity"),
    ("dropped-operation", drop_operation, FIRST, 3, "does not fit"),
    ("widened-operation", widen_operation, FIRST, 4, "sender differs"),
]


@pytest.mark.parametrize(
    ("tamper", "conv", "seq", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_verify_names_the_first_broken_seq(
    postgres_dsn: str,
    tmp_path: Path,
    ring: KeyRing,
    tamper: Tamper,
    conv: int,
    seq: int,
    reason: str,
) -> None:
    await build(postgres_dsn, tmp_path, ring)
    await tampered(postgres_dsn, tamper)
    async with store_on(postgres_dsn, tmp_path, ring) as store:
        report = await store.verify()
        only = await store.verify([conv])
    first = [p for p in report.problems if p.conv_id == conv]
    assert first, report.problems
    assert (first[0].conv_id, first[0].seq) == (conv, seq), report.problems
    assert reason in str(first[0].reason)
    # Each conversation is checked on its own: only the tampered one is reported (and the
    # membership row granted with another's MAC is named by the row MACs too).
    assert {p.conv_id for p in report.problems} - {0} == {conv}
    assert [(p.conv_id, p.seq) for p in only.problems] == [(conv, seq)]


async def test_an_untampered_database_verifies(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    await build(postgres_dsn, tmp_path, ring)
    await tampered(postgres_dsn, lambda conn: conn.execute("SELECT 1"))  # triggers off and on
    async with store_on(postgres_dsn, tmp_path, ring) as store:
        report = await store.verify()
        assert report.ok and (report.conversations, report.events) == (2, 10), report.problems
        only_second = await store.verify([SECOND])
        assert only_second.ok and (only_second.conversations, only_second.events) == (1, 4)


async def test_a_tampered_profile_is_detected(
    postgres_dsn: str, tmp_path: Path, ring: KeyRing
) -> None:
    await build(postgres_dsn, tmp_path, ring)

    async def tamper(conn: asyncpg.Connection) -> None:
        blob = bytes(await conn.fetchval("SELECT profile FROM users WHERE id = 2"))
        await conn.execute("UPDATE users SET profile = $1 WHERE id = 2", blob[:-1] + b"?")

    await tampered(postgres_dsn, tamper)
    async with store_on(postgres_dsn, tmp_path, ring) as store:
        report = await store.verify()
    assert any(p.user_id == 2 for p in report.problems), report.problems
