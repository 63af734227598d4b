"""Tampering with the database is found by ``store.verify()`` and ``chatd verify``, and the
append-only triggers refuse the easy ways of rewriting history.

The attacker has the database file and a sqlite3 shell, not the key file: they drop the
triggers that are in their way, then edit rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatd.core.errors import IntegrityError
from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.store.sqlite import SqliteStore
from tests.conftest import create_conv, leave, make_users, post, run_chatd

FIRST, SECOND = 1, 2  # conversation ids: 6 events in the first, 4 in the second


async def build(data_dir: Path, ring: KeyRing) -> Path:
    write_key_file(data_dir / "master.keys", ring, replace=False)
    db = data_dir / "chatd.sqlite3"
    store = SqliteStore(db, ring)
    async with store:
        a, b, c = await make_users(store, "alice", "bob", "carol")
        first = await create_conv(store, a, [b], first="one")
        second = await create_conv(store, a, [c], first="other one")
        assert (first.conv_id, second.conv_id) == (FIRST, SECOND)
        for i in range(4):
            await post(store, FIRST, b if i % 2 else a, f"first conv {i}")
        await post(store, SECOND, c, "other two")
        await leave(store, SECOND, c)
        assert (await store.verify()).ok
    return db


TRIGGERS = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"


@contextmanager
def tampering(db: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection for the attacker, who then puts back every trigger they dropped to
    get their edits in: verify's schema check would name a missing one
    (:func:`test_a_dropped_or_edited_trigger_is_reported`), so a careful attacker restores
    the schema and only the rows can tell."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        before = dict(conn.execute(TRIGGERS).fetchall())
        yield conn
        now = dict(conn.execute(TRIGGERS).fetchall())
        for name, sql in before.items():
            if name not in now:
                conn.execute(sql)
    finally:
        conn.close()


def drop_event_triggers(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("DROP TRIGGER events_append_only_delete")


def ciphertext(conn: sqlite3.Connection, conv: int, seq: int) -> bytes:
    return bytes(
        conn.execute(
            "SELECT ciphertext FROM events WHERE conv_id = ? AND seq = ?", (conv, seq)
        ).fetchone()[0]
    )


def set_ciphertext(conn: sqlite3.Connection, conv: int, seq: int, value: bytes) -> None:
    conn.execute(
        "UPDATE events SET ciphertext = ? WHERE conv_id = ? AND seq = ?", (value, conv, seq)
    )


def rechain(conn: sqlite3.Connection, conv: int) -> None:
    """What a knowledgeable attacker does: recompute every hash and the conversation's head,
    so that only the seals can tell."""
    prev = GENESIS
    rows = conn.execute(
        "SELECT seq, kind, ciphertext FROM events WHERE conv_id = ? ORDER BY seq", (conv,)
    ).fetchall()
    for seq, kind, ct in rows:
        digest = link_hash(prev, conv, seq, kind, bytes(ct))
        conn.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE conv_id = ? AND seq = ?",
            (prev, digest, conv, seq),
        )
        prev = digest
    conn.execute("UPDATE conversations SET last_hash = ? WHERE id = ?", (prev, conv))


def flip_byte(conn: sqlite3.Connection) -> None:
    ct = bytearray(ciphertext(conn, FIRST, 3))
    ct[len(ct) // 2] ^= 0x01
    set_ciphertext(conn, FIRST, 3, bytes(ct))


def delete_middle(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE conv_id = ? AND seq = 3", (FIRST,))


def delete_last(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE conv_id = ? AND seq = 6", (FIRST,))


def swap_two(conn: sqlite3.Connection) -> None:
    two, four = ciphertext(conn, FIRST, 2), ciphertext(conn, FIRST, 4)
    set_ciphertext(conn, FIRST, 2, four)
    set_ciphertext(conn, FIRST, 4, two)


def copy_from_other_conversation(conn: sqlite3.Connection) -> None:
    set_ciphertext(conn, FIRST, 2, ciphertext(conn, SECOND, 2))  # both are messages


def flip_byte_and_rechain(conn: sqlite3.Connection) -> None:
    flip_byte(conn)
    rechain(conn, FIRST)


def move_within_and_rechain(conn: sqlite3.Connection) -> None:
    set_ciphertext(conn, FIRST, 3, ciphertext(conn, FIRST, 5))
    rechain(conn, FIRST)


def copy_across_and_rechain(conn: sqlite3.Connection) -> None:
    copy_from_other_conversation(conn)
    rechain(conn, FIRST)


def relabel_kind_and_rechain(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET kind = 'renamed' WHERE conv_id = ? AND seq = 4", (FIRST,))
    rechain(conn, FIRST)


def tamper_data_key(conn: sqlite3.Connection) -> None:
    (blob,) = conn.execute(
        "SELECT wrapped FROM data_keys WHERE scope = 'conv' AND scope_id = ?", (SECOND,)
    ).fetchone()
    blob = bytearray(blob)
    blob[-1] ^= 0x80
    conn.execute(
        "UPDATE data_keys SET wrapped = ? WHERE scope = 'conv' AND scope_id = ?",
        (bytes(blob), SECOND),
    )


def swap_data_keys(conn: sqlite3.Connection) -> None:
    rows = dict(
        conn.execute(
            "SELECT scope_id, wrapped FROM data_keys WHERE scope = 'conv' ORDER BY scope_id"
        ).fetchall()
    )
    for conv, other in ((FIRST, SECOND), (SECOND, FIRST)):
        conn.execute(
            "UPDATE data_keys SET wrapped = ? WHERE scope = 'conv' AND scope_id = ?",
            (rows[other], conv),
        )


def tamper_name(conn: sqlite3.Connection) -> None:
    (name,) = conn.execute("SELECT name FROM conversations WHERE id = ?", (SECOND,)).fetchone()
    name = bytearray(name)
    name[-1] ^= 0x01
    conn.execute("UPDATE conversations SET name = ? WHERE id = ?", (bytes(name), SECOND))


def grant_membership(conn: sqlite3.Connection) -> None:
    """Give carol (user 3) the whole history of the first conversation, with the MAC of
    bob's row (which the replay and the row's MAC both refuse)."""
    conn.execute(
        "INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq, mac)"
        " SELECT conv_id, 3, joined_seq, left_seq, mac FROM memberships"
        " WHERE conv_id = ? AND user_id = 2",
        (FIRST,),
    )


def reopen_membership(conn: sqlite3.Connection) -> None:
    """Carol left the second conversation at seq 4; make her a member again."""
    conn.execute(
        "UPDATE memberships SET left_seq = NULL WHERE conv_id = ? AND user_id = 3", (SECOND,)
    )


def remove_membership(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM memberships WHERE conv_id = ? AND user_id = 2", (FIRST,))


CASES: list[tuple[str, Callable[[sqlite3.Connection], None], int, int, str]] = [
    ("flip-byte", flip_byte, FIRST, 3, "hash mismatch"),
    ("delete-middle", delete_middle, FIRST, 3, "missing"),
    ("delete-last", delete_last, FIRST, 6, "rows removed"),
    ("swap-ciphertexts", swap_two, FIRST, 2, "hash mismatch"),
    ("copy-from-other-conversation", copy_from_other_conversation, FIRST, 2, "hash mismatch"),
    ("flip-byte-rechained", flip_byte_and_rechain, FIRST, 3, "seal does not open"),
    ("move-within-rechained", move_within_and_rechain, FIRST, 3, "seal does not open"),
    ("copy-across-rechained", copy_across_and_rechain, FIRST, 2, "seal does not open"),
    ("relabel-kind-rechained", relabel_kind_and_rechain, FIRST, 4, "seal does not open"),
    ("data-key", tamper_data_key, SECOND, 0, "data key"),
    ("swapped-data-keys", swap_data_keys, FIRST, 0, "data key"),
    ("conversation-name", tamper_name, SECOND, 0, "name"),
    ("grant-membership", grant_membership, FIRST, 1, "membership"),
    ("reopen-membership", reopen_membership, SECOND, 1, "membership"),
    ("remove-membership", remove_membership, FIRST, 1, "membership"),
]


@pytest.mark.parametrize(
    ("tamper", "conv", "seq", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_verify_names_the_first_broken_seq(
    tmp_path: Path,
    ring: KeyRing,
    tamper: Callable[[sqlite3.Connection], None],
    conv: int,
    seq: int,
    reason: str,
) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        drop_event_triggers(conn)
        for trigger in (
            "data_keys_no_resurrection",
            "memberships_no_delete",
            "memberships_close_once",
        ):
            conn.execute(f"DROP TRIGGER {trigger}")
        tamper(conn)

    async with SqliteStore(db, ring) as store:
        report = await store.verify()
    assert not report.ok
    first = [p for p in report.problems if p.conv_id == conv]
    assert first, report.problems
    assert (first[0].conv_id, first[0].seq) == (conv, seq), report.problems
    assert reason in first[0].reason
    # Each conversation is checked on its own: only the tampered ones are reported.
    broken = {p.conv_id for p in report.problems}
    assert broken == ({FIRST, SECOND} if tamper is swap_data_keys else {conv})

    result = run_chatd(tmp_path, "verify", "--json")
    assert result.returncode == 1, result
    assert f"BROKEN conversation {conv}, seq {seq}:" in result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert {"conv": conv, "seq": seq} in [{"conv": p["conv"], "seq": p["seq"]} for p in problems]


async def test_a_forged_sender_is_detected(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        drop_event_triggers(conn)
        conn.execute("UPDATE events SET sender = 2 WHERE conv_id = ? AND seq = 3", (FIRST,))
    async with SqliteStore(db, ring) as store:
        # The sender is bound into the seal: the forged row refuses to open rather than
        # showing bob as its author.
        with pytest.raises(IntegrityError):
            await store.visible_window(1, FIRST)
        report = await store.verify()
    assert [(p.conv_id, p.seq) for p in report.problems] == [(FIRST, 3)]


async def test_a_forged_timestamp_is_detected(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        drop_event_triggers(conn)
        conn.execute("UPDATE events SET ts = ts - 86400000 WHERE conv_id = ? AND seq = 3", (FIRST,))
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
    assert [(p.conv_id, p.seq) for p in report.problems] == [(FIRST, 3)]


async def test_a_tampered_profile_is_detected(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        (blob,) = conn.execute("SELECT profile FROM users WHERE id = 2").fetchone()
        conn.execute("UPDATE users SET profile = ? WHERE id = 2", (bytes(blob[:-1]) + b"?",))
    result = run_chatd(tmp_path, "user", "list")
    assert result.returncode == 4  # the damage is real: no user can be listed any more
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
    assert not report.ok
    assert run_chatd(tmp_path, "verify").returncode == 1


async def test_untampered_database_verifies(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        drop_event_triggers(conn)  # dropping triggers alone changes no data
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
        assert report.ok and (report.conversations, report.events) == (2, 10)
        only_second = await store.verify([SECOND])
        assert only_second.ok and (only_second.conversations, only_second.events) == (1, 4)
    result = run_chatd(tmp_path, "verify", "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout) == {
        "conversations": 2,
        "events": 10,
        "attachments": 0,
        "admin_actions": 0,
        "problems": [],
        "warnings": [],
    }


async def test_verify_can_check_one_conversation(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        drop_event_triggers(conn)
        delete_middle(conn)
    async with SqliteStore(db, ring) as store:
        assert (await store.verify([SECOND])).ok
        assert [(p.conv_id, p.seq) for p in (await store.verify([FIRST])).problems] == [(1, 3)]
    result = run_chatd(tmp_path, "verify")
    assert result.returncode == 1
    assert "BROKEN conversation 1, seq 3: event missing" in result.stderr
    assert "1 broken" in result.stdout


# ----------------------------------------------------------------------------- the triggers


def refused(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(sql, params)


async def test_events_are_append_only(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        before = conn.execute("SELECT * FROM events ORDER BY conv_id, seq").fetchall()
        refused(conn, "UPDATE events SET ciphertext = x'00' WHERE conv_id = 1 AND seq = 2")
        refused(conn, "UPDATE events SET kind = 'renamed' WHERE conv_id = 1")
        refused(conn, "DELETE FROM events WHERE conv_id = 1 AND seq = 6")
        refused(conn, "DELETE FROM events")
        assert conn.execute("SELECT * FROM events ORDER BY conv_id, seq").fetchall() == before


async def test_destroyed_data_keys_stay_destroyed(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        live = conn.execute(
            "SELECT kek_id, wrapped FROM data_keys WHERE scope = 'conv' AND scope_id = 1"
        ).fetchone()
    async with SqliteStore(db, ring) as store:
        await store.shred_conversation(SECOND)
    with tampering(db) as conn:
        refused(
            conn,
            "UPDATE data_keys SET kek_id = ?, wrapped = ?, destroyed_at = NULL"
            " WHERE scope = 'conv' AND scope_id = 2",
            live,
        )
        refused(conn, "UPDATE data_keys SET destroyed_at = 1 WHERE scope = 'conv' AND scope_id = 2")
        refused(conn, "DELETE FROM data_keys WHERE scope = 'conv' AND scope_id = 2")
        refused(conn, "DELETE FROM data_keys WHERE scope = 'conv' AND scope_id = 1")
        row = conn.execute(
            "SELECT kek_id, wrapped, destroyed_at FROM data_keys"
            " WHERE scope = 'conv' AND scope_id = 2"
        ).fetchone()
        assert row[0] is None and row[1] is None and row[2] is not None


MEMBERSHIP_ROWS = "SELECT conv_id, user_id, joined_seq, left_seq FROM memberships ORDER BY 1, 2, 3"


async def test_memberships_cannot_be_deleted_or_reopened(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        before = conn.execute(MEMBERSHIP_ROWS).fetchall()
        assert (SECOND, 3, 1, 5) in before  # carol left the second conversation at seq 4
        refused(conn, "DELETE FROM memberships WHERE conv_id = 2 AND user_id = 3")
        refused(conn, "DELETE FROM memberships")
        refused(conn, "UPDATE memberships SET left_seq = NULL WHERE conv_id = 2 AND user_id = 3")
        refused(conn, "UPDATE memberships SET left_seq = 9 WHERE conv_id = 2 AND user_id = 3")
        refused(conn, "UPDATE memberships SET joined_seq = 2 WHERE conv_id = 1 AND user_id = 2")
        refused(conn, "UPDATE memberships SET user_id = 3 WHERE conv_id = 1 AND user_id = 2")
        refused(conn, "UPDATE idempotency_keys SET first_seq = 99")
        assert conn.execute(MEMBERSHIP_ROWS).fetchall() == before


@pytest.mark.parametrize("edit", ["drop", "edit"])
async def test_a_dropped_or_edited_trigger_is_reported(
    tmp_path: Path, ring: KeyRing, edit: str
) -> None:
    """Dropping an append-only trigger changes no row, yet disarms the log's defence: the
    schema is compared with what the migrations create."""
    db = await build(tmp_path, ring)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events_append_only_delete'"
        ).fetchone()
        conn.execute("DROP TRIGGER events_append_only_delete")
        if edit == "edit":  # a trigger that no longer refuses anything
            conn.execute(sql.replace("BEGIN", "WHEN 0 BEGIN", 1))
    finally:
        conn.close()
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
    how = "is missing" if edit == "drop" else "differs from what the migrations create"
    assert [p.reason for p in report.problems] == [
        f"schema: the trigger events_append_only_delete {how}"
    ]
    result = run_chatd(tmp_path, "verify", "--json")
    assert result.returncode == 1, result
    assert [p["reason"] for p in json.loads(result.stdout)["problems"]] == [
        f"schema: the trigger events_append_only_delete {how}"
    ]
    french = run_chatd(tmp_path, "verify", env={"LANG": "fr_FR.UTF-8"})
    assert french.returncode == 1
    assert "schéma" in french.stderr and "events_append_only_delete" in french.stderr
