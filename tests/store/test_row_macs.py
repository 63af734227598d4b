"""Authenticated rows (issue 13): the clear security columns of accounts, login tokens,
attachments and memberships carry a MAC under a key derived from the key file.

The attacker has the database file and a sqlite3 shell, not the key file: they drop the
triggers in their way, edit rows and put the triggers back (``tampering``), so only the rows'
MACs can tell.  Each edit is found by ``store.verify()`` and ``chatd verify`` (on a real
database file), and the reads the server relies on refuse the edited row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from chatd.attachments.blobstore import BlobStore
from chatd.core.errors import AttachmentNotFound
from chatd.core.records import NewAttachment, SessionToken
from chatd.crypto.attachment_keys import new_attachment_id
from chatd.crypto.envelope import new_data_key
from chatd.crypto.keyring import KeyRing, load_key_file
from chatd.crypto.row_macs import kid_tag
from chatd.store.sqlite import SqliteStore
from chatd.store.sqlite.db import _statements
from chatd.store.sqlite.migrations import MIGRATIONS
from tests.conftest import FAKE_PASSWORD_HASH, make_user, run_chatd
from tests.store.test_contract_attachments import send
from tests.store.test_tamper import FIRST, SECOND, build, tampering

ALICE, BOB, CAROL = 1, 2, 3
NOW = 1_767_225_600_000
HOUR_MS = 3_600_000
OTHER_HASH = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNo"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\nstartxref\n0\n%%EOF\n"
MAC_TABLES = ("users", "auth_tokens", "attachments", "memberships")
GUARDS = ("attachments_reference_once", "memberships_close_once", "auth_tokens_revoke_once")


def digest(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


async def build_all(data_dir: Path, ring: KeyRing) -> tuple[Path, int]:
    """:func:`tests.store.test_tamper.build`, then: bob's password differs from the others',
    carol is disabled, alice has a live token and a revoked one, and an attachment of
    alice's that a message of hers carries.  Returns the database and the attachment id."""
    db = await build(data_dir, ring)
    blobs = BlobStore(data_dir / "attachments")
    async with SqliteStore(db, ring) as store:
        await store.reset_password(BOB, OTHER_HASH, now_ms=NOW)
        await store.set_user_disabled(CAROL, True)
        for name in ("live", "revoked"):
            await store.create_session_token(
                SessionToken(digest(name), ALICE, NOW, NOW + 100 * 365 * 24 * HOUR_MS)
            )
        await store.revoke_session_token(digest("revoked"), NOW + 1)
        attachment_id, dek = new_attachment_id(), new_data_key()
        await asyncio.to_thread(blobs.write, attachment_id, dek, PDF)
        await store.record_attachment(
            NewAttachment(
                attachment_id, ALICE, "pdf", "application/pdf", len(PDF), "cr.pdf", dek, HOUR_MS
            )
        )
        await send(store, FIRST, ALICE, attachment_id)
        assert (await store.verify()).ok
    return db, attachment_id


def drop(conn: sqlite3.Connection, *triggers: str) -> None:
    for trigger in triggers:
        conn.execute(f"DROP TRIGGER {trigger}")


async def problems_of(db: Path, ring: KeyRing) -> list[str]:
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
    return [str(problem) for problem in report.problems]


def cli_problems(data_dir: Path) -> list[str]:
    result = run_chatd(data_dir, "verify", "--json")
    assert result.returncode == 1, result
    return [p["reason"] for p in json.loads(result.stdout)["problems"]]


# ----------------------------------------------------------------------------- edits found


async def test_an_unrevoked_token_is_found_and_opens_nothing(tmp_path: Path, ring: KeyRing) -> None:
    db, _ = await build_all(tmp_path, ring)
    with tampering(db) as conn:
        drop(conn, "auth_tokens_revoke_once")
        conn.execute("UPDATE auth_tokens SET revoked_at = NULL")
    assert await problems_of(db, ring) == [
        f"user {ALICE}: a login token row fails its integrity check: its MAC does not match the row"
    ]
    async with SqliteStore(db, ring) as store:
        assert await store.find_session_token(digest("revoked")) is None
        live = await store.find_session_token(digest("live"))
        assert live is not None and live.revoked_at is None
        invalid = await store.invalid_session_tokens([digest("live"), digest("revoked")], NOW)
        assert invalid == {digest("revoked")}
    assert cli_problems(tmp_path) == [
        "a login token row fails its integrity check: its MAC does not match the row"
    ]
    french = run_chatd(tmp_path, "verify", env={"LANG": "fr_FR.UTF-8"})
    assert "jeton de connexion" in french.stderr and digest("revoked").hex() not in french.stderr


async def test_a_copied_password_hash_is_found_and_logs_nobody_in(
    tmp_path: Path, ring: KeyRing
) -> None:
    db, _ = await build_all(tmp_path, ring)
    with tampering(db) as conn:  # no trigger guards users: alice's hash onto every account
        conn.execute(
            "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE id = 1)"
        )
    # Carol's hash was alice's already: only bob's row changed.
    assert await problems_of(db, ring) == [
        f"user {BOB}: the account row fails its integrity check: its MAC does not match the row"
    ]
    async with SqliteStore(db, ring) as store:
        assert await store.find_user_by_login("bob") is None  # a login finds no account
        alice = await store.find_user_by_login("alice")
        assert alice is not None and alice.password_hash == FAKE_PASSWORD_HASH


async def test_a_reenabled_account_is_found_and_logs_nobody_in(
    tmp_path: Path, ring: KeyRing
) -> None:
    db, _ = await build_all(tmp_path, ring)
    async with SqliteStore(db, ring) as store:
        await store.create_session_token(SessionToken(digest("carol"), CAROL, NOW, NOW + HOUR_MS))
    with tampering(db) as conn:
        conn.execute("UPDATE users SET disabled = 0 WHERE id = ?", (CAROL,))
    assert await problems_of(db, ring) == [
        f"user {CAROL}: the account row fails its integrity check: its MAC does not match the row"
    ]
    async with SqliteStore(db, ring) as store:
        assert await store.find_user_by_login("carol") is None
        # Her token was never revoked; her account row no longer opens it.
        assert await store.find_session_token(digest("carol")) is None
        assert await store.invalid_session_tokens([digest("carol")], NOW) == {digest("carol")}
    assert cli_problems(tmp_path) == [
        "the account row fails its integrity check: its MAC does not match the row"
    ]


ATTACHMENT_EDITS = {
    "mime": "UPDATE attachments SET mime = 'text/html'",
    "kind": "UPDATE attachments SET kind = 'png'",
    "size": "UPDATE attachments SET size = size + 1",
    "uploader": "UPDATE attachments SET uploader = 2",
}


@pytest.mark.parametrize("edit", sorted(ATTACHMENT_EDITS))
async def test_an_edited_attachment_row_is_found_and_served_to_nobody(
    tmp_path: Path, ring: KeyRing, edit: str
) -> None:
    db, attachment_id = await build_all(tmp_path, ring)
    async with SqliteStore(db, ring) as store:
        assert (await store.attachment_for_user(BOB, attachment_id)).info.mime == (
            "application/pdf"
        )
    with tampering(db) as conn:
        drop(conn, "attachments_reference_once")
        if edit == "uploader":
            drop(conn, "attachments_referenced_by_own_message")
        conn.execute(ATTACHMENT_EDITS[edit])
    problems = await problems_of(db, ring)
    assert f"attachment {attachment_id:016x}: its row fails its integrity check" in problems[-1]
    async with SqliteStore(db, ring) as store:
        with pytest.raises(AttachmentNotFound):
            await store.attachment_for_user(BOB, attachment_id)
    assert any("its row fails its integrity check" in p for p in cli_problems(tmp_path))


async def test_a_membership_with_a_copied_mac_is_found(tmp_path: Path, ring: KeyRing) -> None:
    db, _ = await build_all(tmp_path, ring)
    with tampering(db) as conn:
        conn.execute(
            "INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq, mac)"
            " SELECT conv_id, ?, joined_seq, left_seq, mac FROM memberships"
            " WHERE conv_id = ? AND user_id = ?",
            (CAROL, FIRST, BOB),
        )
    problems = await problems_of(db, ring)
    assert (
        f"conversation {FIRST}, seq 1: the membership row of user {CAROL} fails its integrity"
        " check: its MAC does not match the row"
    ) in problems


@pytest.mark.parametrize("table", MAC_TABLES)
@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "it has no MAC"),
        (b"short", "its MAC is malformed"),
        ("some text", "its MAC is malformed"),
        (12, "its MAC is malformed"),
        (
            kid_tag("0badc0de") + bytes(32),
            "its MAC was made with a key that is not in the key file",
        ),
    ],
    ids=["null", "short", "text", "integer", "unknown-key"],
)
async def test_a_missing_or_garbage_mac_is_reported(
    tmp_path: Path, ring: KeyRing, table: str, value: object, why: str
) -> None:
    db, _ = await build_all(tmp_path, ring)
    with tampering(db) as conn:
        drop(
            conn, "attachments_reference_once", "memberships_close_once", "auth_tokens_revoke_once"
        )
        conn.execute(f"UPDATE {table} SET mac = ?", (value,))
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
    assert report.problems and all(why in p.reason for p in report.problems), report.problems
    for problem in report.problems:
        assert digest("live").hex() not in str(problem) and "argon2" not in str(problem)


async def test_an_update_does_not_launder_a_tampered_row(tmp_path: Path, ring: KeyRing) -> None:
    """Disabling an account whose hash was edited keeps its row failing: the change is
    written with the old MAC, not a new one over the edited hash."""
    db, _ = await build_all(tmp_path, ring)
    with tampering(db) as conn:
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (FAKE_PASSWORD_HASH, BOB))
    async with SqliteStore(db, ring) as store:
        await store.set_user_disabled(BOB, True)
        await store.set_user_disabled(BOB, False)
        report = await store.verify()
    assert [(p.user_id, "account row" in p.reason) for p in report.problems] == [(BOB, True)]


# ----------------------------------------------------------------------------- rotation


async def test_rotation_remacs_every_row_and_the_old_key_can_go(
    tmp_path: Path, ring: KeyRing
) -> None:
    db, _ = await build_all(tmp_path, ring)
    rotated = ring.with_new_active()
    async with SqliteStore(db, ring) as store:
        assert await store.row_mac_kek_ids() == {ring.active_id}
        await store.rewrap_data_keys(rotated)
        assert await store.row_mac_kek_ids() == {rotated.active_id}
    with sqlite3.connect(db) as conn:
        for table in MAC_TABLES:
            tags = {bytes(r[0][:4]) for r in conn.execute(f"SELECT mac FROM {table}")}
            assert tags == {kid_tag(rotated.active_id)}, table
    retired = rotated.without(ring.active_id)
    async with SqliteStore(db, retired) as store:
        report = await store.verify()
        assert report.ok, report.problems
        assert await store.find_user_by_login("alice") is not None


async def test_retire_is_refused_while_a_row_is_maced_under_the_key(tmp_path: Path) -> None:
    """A node still running with the old key file made a row after the rotation: the data
    keys are all under the new key, one account row is not; retiring the old key would
    leave that row unverifiable."""
    ring = KeyRing.generate()
    await build(tmp_path, ring)
    assert run_chatd(tmp_path, "keys", "rotate").returncode == 0
    rotated = load_key_file(tmp_path / "master.keys")
    stale = KeyRing(active_id=ring.active_id, keys=rotated.keys)
    async with SqliteStore(tmp_path / "chatd.sqlite3", stale) as store:
        await make_user(store, "dave")
        assert ring.active_id not in await store.kek_ids_in_use()
    result = run_chatd(tmp_path, "keys", "retire", ring.active_id)
    assert result.returncode == 3, result
    assert "still authenticates database rows" in result.stderr
    assert ring.active_id in load_key_file(tmp_path / "master.keys").keys
    assert run_chatd(tmp_path, "keys", "rotate").returncode == 0
    retired = run_chatd(tmp_path, "keys", "retire", ring.active_id)
    assert retired.returncode == 0, retired
    assert run_chatd(tmp_path, "verify").returncode == 0


# ----------------------------------------------------------------------------- migration 10


def rewind_to_9(db: Path) -> None:
    """The schema as migration 9 left it: no mac columns, the triggers as they were, no
    upload budgets (migrations 10 to 12 undone)."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE upload_budgets")  # migration 12 (its index goes with it)
        for table in (*MAC_TABLES, "idempotency_keys"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN mac")
        for name, version in (
            ("attachments_reference_once", 3),
            ("memberships_close_once", 1),
            ("auth_tokens_revoke_once", 8),
            ("idempotency_keys_no_update", 1),
        ):
            conn.execute(f"DROP TRIGGER {name}")
            (sql,) = [
                s
                for s in _statements(MIGRATIONS[version - 1].sql)
                if s.startswith(f"CREATE TRIGGER {name} ")
            ]
            conn.execute(sql)
        conn.execute("DELETE FROM schema_migrations WHERE version >= 10")


async def test_migration_10_macs_the_rows_that_exist(tmp_path: Path, ring: KeyRing) -> None:
    db, attachment_id = await build_all(tmp_path, ring)
    rewind_to_9(db)
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
        assert report.ok, report.problems
        assert (await store.attachment_for_user(BOB, attachment_id)).info.size == len(PDF)
        assert await store.find_session_token(digest("live")) is not None
    with sqlite3.connect(db) as conn:
        for table in MAC_TABLES:
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE mac IS NULL").fetchone() == (
                0,
            )
    assert run_chatd(tmp_path, "verify").returncode == 0


# ----------------------------------------------------------------------------- the triggers


def refused(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(sql, params)


async def test_the_triggers_refuse_as_before_and_let_a_mac_change(
    tmp_path: Path, ring: KeyRing
) -> None:
    """Migration 10's triggers: what was refused still is (with or without a new MAC); an
    update of the MAC alone goes through (backfill, rotation)."""
    db, attachment_id = await build_all(tmp_path, ring)
    mac = kid_tag(ring.active_id) + bytes(32)
    with tampering(db) as conn:
        revoked = (digest("revoked"),)
        refused(conn, "UPDATE auth_tokens SET revoked_at = NULL WHERE token_hash = ?", revoked)
        refused(
            conn,
            "UPDATE auth_tokens SET revoked_at = NULL, mac = x'00' WHERE token_hash = ?",
            revoked,
        )
        refused(conn, "UPDATE auth_tokens SET last_seen_at = 5 WHERE token_hash = ?", revoked)
        refused(conn, "UPDATE auth_tokens SET expires_at = expires_at + 1")
        conn.execute("UPDATE auth_tokens SET mac = ? WHERE token_hash = ?", (mac, *revoked))
        live = (digest("live"),)
        conn.execute("UPDATE auth_tokens SET last_seen_at = 5 WHERE token_hash = ?", live)

        refused(conn, "UPDATE attachments SET mime = 'text/html'")
        refused(conn, "UPDATE attachments SET conv_id = NULL, seq = NULL")
        refused(conn, "UPDATE attachments SET seq = seq + 1, mac = x'00'")
        conn.execute("UPDATE attachments SET mac = ? WHERE id = ?", (mac, attachment_id))

        closed = (SECOND, CAROL)
        where = "WHERE conv_id = ? AND user_id = ?"
        refused(conn, f"UPDATE memberships SET left_seq = NULL {where}", closed)
        refused(conn, f"UPDATE memberships SET left_seq = 9, mac = x'00' {where}", closed)
        refused(conn, "UPDATE memberships SET joined_seq = 2, mac = x'00' WHERE conv_id = 1")
        conn.execute(f"UPDATE memberships SET mac = ? {where}", (mac, *closed))
        count = "SELECT COUNT(*) FROM {} WHERE mac = ?"
        for table in ("auth_tokens", "attachments", "memberships"):
            assert conn.execute(count.format(table), (mac,)).fetchone() == (1,), table


# ----------------------------------------------------------------------------- migration 11


@pytest.mark.parametrize(
    "edit", ["first_seq = first_seq - 1, last_seq = last_seq - 1", "mac = NULL"]
)
async def test_a_retry_whose_key_row_was_edited_is_refused_never_answered_nor_applied_again(
    tmp_path: Path, ring: KeyRing, edit: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The row that answers a retry lies (it points at another event) or lost its MAC: the
    retry gets an integrity error, and nothing is appended a second time."""
    from chatd.core.errors import IntegrityError
    from tests.conftest import create_conv, make_users, post

    db = tmp_path / "chatd.sqlite3"
    async with SqliteStore(db, ring) as store:
        alice, bob = await make_users(store, "alice", "bob")
        conv = await create_conv(store, alice, [bob], first="hello")
        sent = await post(store, conv.conv_id, alice, "the only copy", client_msg_id="once")
        assert sent.first_seq == 3
    with tampering(db) as conn:
        conn.execute("DROP TRIGGER idempotency_keys_no_update")
        conn.execute(f"UPDATE idempotency_keys SET {edit} WHERE client_msg_id = 'once'")
    async with SqliteStore(db, ring) as store:
        with pytest.raises(IntegrityError):
            await post(store, conv.conv_id, alice, "the only copy", client_msg_id="once")
        other = await post(store, conv.conv_id, alice, "a new one", client_msg_id="twice")
        page = await store.events_after(alice, conv.conv_id, 0, 100)
    assert other.first_seq == 4 and [e.seq for e in page.events] == [1, 2, 3, 4]
    assert "the retry key of user" in caplog.text and "once" not in caplog.text
