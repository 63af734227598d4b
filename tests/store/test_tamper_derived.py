"""Tampering with the clear columns that repeat the log (:mod:`chatd.store.sqlite.consistency`)
is found by ``verify``: no chain, seal or row MAC covers them, so each edit here passed before.

The attacker has the database file and a sqlite3 shell, not the key file (as in
``test_tamper.py``, whose database and tampering helpers this reuses).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from chatd.crypto.keyring import KeyRing
from chatd.store.sqlite import SqliteStore
from tests.store.test_tamper import FIRST, SECOND, build, tampering


def old_last_event(conn: sqlite3.Connection) -> None:
    """What makes retention shred a live conversation: it looks idle for years."""
    conn.execute("UPDATE conversations SET last_event_at = 1000 WHERE id = ?", (FIRST,))


def later_creation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE conversations SET created_at = created_at + 1 WHERE id = ?", (FIRST,))


def no_message(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE conversations SET last_message_seq = 0 WHERE id = ?", (FIRST,))


def shredded_but_live(conn: sqlite3.Connection) -> None:
    """Hides a live conversation from every reader, its keys intact."""
    conn.execute("UPDATE conversations SET shredded_at = 5 WHERE id = ?", (SECOND,))


def forgotten_operation(conn: sqlite3.Connection) -> None:
    """A retry of the last post would then be applied a second time."""
    conn.execute(
        "DELETE FROM idempotency_keys WHERE conv_id = ? AND first_seq ="
        " (SELECT MAX(first_seq) FROM idempotency_keys WHERE conv_id = ?)",
        (FIRST, FIRST),
    )


def stretched_operation(conn: sqlite3.Connection) -> None:
    """The last post's row claims an event past the end of the log."""
    conn.execute("DROP TRIGGER idempotency_keys_no_update")
    conn.execute(
        "UPDATE idempotency_keys SET last_seq = last_seq + 1 WHERE conv_id = ? AND first_seq = 6",
        (FIRST,),
    )


def other_sender(conn: sqlite3.Connection) -> None:
    """The operation row is what still vouches for an event's sender once its seal is gone."""
    conn.execute("DROP TRIGGER idempotency_keys_no_update")
    conn.execute(
        "UPDATE idempotency_keys SET sender = 3 WHERE conv_id = ? AND first_seq = 3", (FIRST,)
    )


def other_retry_key(conn: sqlite3.Connection) -> None:
    """A retry with this key would be answered as done (a lost message), or the retry of the
    real one applied twice: only the row's MAC can tell, nothing else repeats the key."""
    conn.execute("DROP TRIGGER idempotency_keys_no_update")
    conn.execute(
        "UPDATE idempotency_keys SET client_msg_id = 'guessed' WHERE conv_id = ? AND first_seq = 3",
        (FIRST,),
    )


CASES: list[tuple[str, Callable[[sqlite3.Connection], None], int, str]] = [
    ("last-event-at", old_last_event, FIRST, "last activity time"),
    ("created-at", later_creation, FIRST, "creation time"),
    ("last-message-seq", no_message, FIRST, "last message seq"),
    ("shredded-at", shredded_but_live, SECOND, "marked shredded but a data key of it is live"),
    ("deleted-idempotency-key", forgotten_operation, FIRST, "no operation record"),
    ("stretched-idempotency-key", stretched_operation, FIRST, "does not fit the log"),
    ("idempotency-key-sender", other_sender, FIRST, "sender differs"),
    ("idempotency-key-client-msg-id", other_retry_key, FIRST, "retry key of user"),
]


@pytest.mark.parametrize(
    ("tamper", "conv", "reason"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
async def test_a_column_that_repeats_the_log_is_checked(
    tmp_path: Path,
    ring: KeyRing,
    tamper: Callable[[sqlite3.Connection], None],
    conv: int,
    reason: str,
) -> None:
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        tamper(conn)
    async with SqliteStore(db, ring) as store:
        report = await store.verify()
    # An edited idempotency row also fails its MAC (migration 11): one more problem, same place.
    assert {p.conv_id for p in report.problems} == {conv}, report.problems
    assert any(reason in p.reason for p in report.problems), report.problems


async def test_a_changed_epoch_differs_from_the_last_checkpoint(
    tmp_path: Path, ring: KeyRing
) -> None:
    """A new epoch tells clients a restore from a rewind; only chatd may declare one, and
    it takes a checkpoint with it."""
    db = await build(tmp_path, ring)
    with tampering(db) as conn:
        conn.execute("UPDATE store_epoch SET epoch = ? WHERE id = 1", ("0" * 32,))
    store = SqliteStore(db, ring)
    await store.open()
    try:
        report = await store.verify()
    finally:
        await store.close()
    reasons = [p.reason for p in report.problems]
    assert any("the store epoch differs from the one of checkpoint" in r for r in reasons), reasons


async def test_a_declared_epoch_passes(tmp_path: Path, ring: KeyRing) -> None:
    db = await build(tmp_path, ring)
    async with SqliteStore(db, ring) as store:
        await store.declare_new_epoch()
        assert (await store.verify()).ok
