"""Random byte flips in copies of a database: every flip that changes stored data is
detected by ``verify``, and verify never hangs nor crashes (issue 13).

A realistic database is built once per module, through the store contract, on real files
and closed cleanly (the WAL folded into the file, the checkpoint log written).  Each flip
XORs one random byte of a copy with a random non-zero mask; a logical dump of the copy
(every table, every row, every column with its SQLite type, ``sqlite_master`` too) read
through a raw ``sqlite3`` connection is compared with the original's:

* unchanged (free space, unused bytes, an index entry SQLite still reads the same): nothing
  is required of verify;
* changed: opening the store must fail with a damaged-database or integrity error, or
  ``verify()`` must report at least one problem.

Advisory columns (:data:`EXCLUDED`) do not count as changes: their change can neither lose,
leak nor misattribute a message, nor grant access.  The same table is in
docs/reliability.md ("Byte flips").
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chatd.core.audit import ActionKind, Actor, AdminAction
from chatd.core.conversations import MessageBody, PostMessage
from chatd.core.errors import DatabaseDamaged, IntegrityError
from chatd.core.login_throttle import ThrottleLimits
from chatd.core.records import LiveSession, NewAttachment, SessionToken
from chatd.crypto.attachment_keys import new_attachment_id
from chatd.crypto.envelope import new_data_key
from chatd.crypto.keyring import KeyRing
from chatd.services.maintenance import Maintenance
from chatd.store.sqlite import SqliteStore
from tests.conftest import FAKE_PASSWORD_HASH, add_member, create_conv, leave, make_users, post
from tests.conftest import rename as rename_conv

SEED = 13
FLIPS = 1000
LOG_FLIPS = 120
TIMEOUT = 60.0  # seconds for one open + verify: generous, it takes a fraction of one
START_MS = 1_767_225_600_000
HOUR_MS = 3_600_000
DB, LOG = "chatd.sqlite3", "chatd.sqlite3.checkpoints"
# What a raw read of a damaged file raises (text that does not decode included).
READ_ERRORS = (sqlite3.Error, UnicodeDecodeError, ValueError)


@dataclass(frozen=True)
class Exclusion:
    reason: str
    # Which rows (by their original values); None: every row of the table.
    where: Callable[[dict[str, object]], bool] | None = None


def _shredded(row: dict[str, object]) -> bool:
    return row.get("shredded_at") is not None


def _directory_key(row: dict[str, object]) -> bool:
    return row.get("scope") == b"directory"


# Columns whose change cannot lose, leak or misattribute a message nor grant access: a flip
# there does not count as a change of stored data.  ``*`` is every column of the table.
# Keep it short: a column that matters gets a check in verify instead.  The same table is in
# docs/reliability.md ("Byte flips").
EXCLUDED: dict[tuple[str, str], Exclusion] = {
    ("live_sessions", "*"): Exclusion("ephemeral: the live connections, rewritten by heartbeats"),
    ("login_attempts", "*"): Exclusion("ephemeral: the login throttle's budgets, a minute long"),
    ("read_markers", "*"): Exclusion("a user's own unread count: hides or shows a badge only"),
    ("auth_tokens", "last_seen_at"): Exclusion("shown to its user; every heartbeat rewrites it"),
    ("auth_tokens", "device"): Exclusion("the client family at login, shown to its user"),
    ("users", "created_at"): Exclusion("shown to administrators; no rule reads it"),
    ("users", "password_changed_at"): Exclusion("shown to administrators; no rule reads it"),
    ("users", "language"): Exclusion("a preference: the language of the user's messages"),
    ("users", "terms_version"): Exclusion("a changed one asks the user to accept again"),
    ("data_keys", "created_at"): Exclusion("the directory key's: read by no code", _directory_key),
    ("conversations", "name"): Exclusion("sealed under a destroyed key: noise", _shredded),
    ("schema_migrations", "applied_at"): Exclusion("when a migration ran: read by no code"),
    ("schema_migrations", "description"): Exclusion("a migration's words: read by no code"),
    ("store_epoch", "declared_at"): Exclusion("when the epoch was declared: shown only"),
}


class Clock:
    """Milliseconds that move on by one second at each reading: every row has its own."""

    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        self.now += 1000
        return self.now


async def fill(store: SqliteStore, clock: Clock) -> None:
    """Users, conversations, tokens, attachments, markers, audit records, checkpoints."""
    alice, bob, carol, dave, erin = await make_users(store, "alice", "bob", "carol", "dave", "erin")
    await store.set_user_language(bob, "fr")
    await store.set_terms_accepted(alice, "2026-01")
    await store.reset_password(carol, FAKE_PASSWORD_HASH, now_ms=clock())
    await store.set_user_disabled(
        erin, True, audit=AdminAction(Actor.os_user("root"), ActionKind.USER_DISABLED)
    )

    first = (await create_conv(store, alice, [bob, carol], first="bonjour")).conv_id
    for n in range(4):
        await post(store, first, (alice, bob)[n % 2], f"message {n}")
    await leave(store, first, carol)
    await rename_conv(store, first, alice, "Staff, lundi")
    await add_member(store, first, bob, carol)
    await post(store, first, carol, "de retour")
    second = (await create_conv(store, bob, [dave], name="Garde")).conv_id
    await post(store, second, dave, "vu")
    third = (await create_conv(store, dave, [alice], first="à détruire")).conv_id
    await store.take_checkpoint(force=True)

    sent = await _attachment(store, alice, thumbnail=b"thumb")
    await _attachment(store, bob)  # never sent
    await store.apply(
        PostMessage(first, alice, MessageBody("voir PJ", attachments=(sent,)), "pj-1")
    )

    for user, n in ((alice, 1), (bob, 2), (carol, 3)):
        token = SessionToken(
            bytes([n]) * 32, user, clock(), START_MS + 30 * HOUR_MS, device="chatd-cli"
        )
        await store.create_session_token(token)
    await store.revoke_session_token(bytes([2]) * 32, clock())
    await store.mark_read(bob, first, 3)
    await store.mark_read(dave, second, 2)
    await store.open_live_session(
        LiveSession("node.1", "node", alice, bytes([1]) * 32, clock()), cap=4, stale_before=0
    )
    await store.begin_login_attempt("alice", "127.0.0.1", ThrottleLimits(), clock())
    maintenance = Maintenance(store)
    await maintenance.shred_conversation(third, by=Actor.os_user("root"))
    await maintenance.declare_new_epoch(by=Actor.os_user("root"))
    await post(store, second, bob, "après")


async def _attachment(store: SqliteStore, uploader: int, thumbnail: bytes | None = None) -> int:
    info = await store.record_attachment(
        NewAttachment(
            new_attachment_id(),
            uploader,
            "jpeg" if thumbnail else "pdf",
            "image/jpeg" if thumbnail else "application/pdf",
            1234,
            "compte rendu.pdf",
            new_data_key(),
            HOUR_MS,
            width=20 if thumbnail else None,
            height=10 if thumbnail else None,
            thumbnail=thumbnail,
        )
    )
    return info.id


@dataclass
class Pristine:
    directory: Path
    ring: KeyRing
    dump: dict[str, object]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    directory = tmp_path_factory.mktemp("pristine")
    ring = KeyRing.generate()
    clock = Clock()

    async def build() -> None:
        async with SqliteStore(directory / DB, ring, clock_ms=clock) as store:
            await fill(store, clock)
        async with SqliteStore(directory / DB, ring, clock_ms=clock) as store:
            report = await store.verify()
            assert report.ok, report.problems

    asyncio.run(build())
    assert not (directory / (DB + "-wal")).exists()
    assert (directory / LOG).stat().st_size > 0
    return Pristine(directory, ring, dump(directory / DB))


# ---------------------------------------------------------------------------- classifying


def dump(path: Path) -> dict[str, object]:
    """Every table's rows, each value with its type; an exception's words where a read
    fails (so that a read that fails is a change)."""
    out: dict[str, object] = {}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except READ_ERRORS as exc:
        return {"": repr(exc)}
    try:
        conn.text_factory = bytes
        try:
            master = conn.execute(
                "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master ORDER BY rowid"
            ).fetchall()
        except READ_ERRORS as exc:
            return {"": repr(exc)}
        out["sqlite_master"] = ([], [_typed(row) for row in master])
        for kind, name, *_ in master:
            if kind != b"table":
                continue
            table = name.decode("utf-8", "replace")
            try:
                cursor = conn.execute(f'SELECT * FROM "{table}"')
                columns = [d[0] for d in cursor.description]
                out[table] = (columns, [_typed(row) for row in cursor.fetchall()])
            except READ_ERRORS as exc:
                out[table] = repr(exc)
    finally:
        conn.close()
    return out


def _typed(row: tuple[object, ...]) -> tuple[object, ...]:
    return tuple((type(value).__name__, value) for value in row)


Change = tuple[str, str, dict[str, object] | None]  # table, column ("*": all), old row


def differences(before: dict[str, object], after: dict[str, object]) -> list[Change]:
    """What differs: each column of each row that changed (with the row as it was), or a
    whole table (``*``) that reads differently or not at all."""
    found: list[Change] = []
    for table in sorted(before.keys() | after.keys()):
        old, new = before.get(table), after.get(table)
        if old == new:
            continue
        if not isinstance(old, tuple) or not isinstance(new, tuple) or old[0] != new[0]:
            found.append((table, "*", None))
            continue
        columns, old_rows = old
        new_rows = new[1]
        if len(old_rows) != len(new_rows) or not columns:
            found.append((table, "*", None))
            continue
        for a, b in zip(old_rows, new_rows, strict=True):
            row = {column: value for column, (_, value) in zip(columns, a, strict=True)}
            found.extend((table, c, row) for c, x, y in zip(columns, a, b, strict=True) if x != y)
    return found


def excluded(change: Change) -> bool:
    table, column, row = change
    rule = EXCLUDED.get((table, column)) or EXCLUDED.get((table, "*"))
    if rule is None:
        return False
    return rule.where is None or (row is not None and rule.where(row))


# ---------------------------------------------------------------------------- verifying


async def problems_seen(directory: Path, ring: KeyRing) -> list[str]:
    """What verify says of the database in ``directory`` (a failed open is a problem)."""
    store = SqliteStore(directory / DB, ring)
    try:
        await store.open()
    except (DatabaseDamaged, IntegrityError) as exc:
        return [f"open: {exc}"]
    try:
        report = await store.verify()
    finally:
        with contextlib.suppress(DatabaseDamaged, IntegrityError):
            await store.close()
    return [p.reason for p in report.problems]


def flip_copy(pristine: Path, into: Path, name: str, rng: random.Random) -> tuple[int, int]:
    """Copy the database and its log into ``into``, flip one byte of ``name``."""
    into.mkdir()
    for file in (DB, LOG):
        shutil.copyfile(pristine / file, into / file)
    target = into / name
    data = bytearray(target.read_bytes())
    at, mask = rng.randrange(len(data)), rng.randrange(1, 256)
    data[at] ^= mask
    target.write_bytes(data)
    return at, mask


@dataclass
class Counts:
    flips: int = 0
    unchanged: int = 0
    changed: int = 0
    detected: int = 0
    excluded_only: int = 0
    missed: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)


async def test_every_flip_that_changes_stored_data_is_detected(
    pristine: Pristine, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    counts = Counts()
    for n in range(FLIPS):
        at, mask = flip_copy(pristine.directory, tmp_path / str(n), DB, rng)
        counts.flips += 1
        changes = differences(pristine.dump, dump(tmp_path / str(n) / DB))
        try:
            seen = await asyncio.wait_for(problems_seen(tmp_path / str(n), pristine.ring), TIMEOUT)
        except TimeoutError:
            pytest.fail(f"seed {SEED}, flip {n} (offset {at}, mask {mask:#04x}): verify hung")
        except Exception as exc:
            counts.crashes.append(f"flip {n} at {at} ^ {mask:#04x}: {exc!r}")
            continue
        if not changes:
            counts.unchanged += 1
        elif all(excluded(c) for c in changes):
            counts.excluded_only += 1
        else:
            counts.changed += 1
            if seen:
                counts.detected += 1
            else:
                what = sorted({(table, column) for table, column, _ in changes})
                counts.missed.append(f"flip {n} at {at} ^ {mask:#04x}: {what}")
    print(
        f"\nbyte flips (seed {SEED}): {counts.flips} flips, {counts.unchanged} unchanged,"
        f" {counts.changed} changed, {counts.detected} detected,"
        f" {counts.excluded_only} excluded-only"
    )
    print("\n".join(counts.missed))
    assert not counts.crashes, f"seed {SEED}: verify crashed:\n" + "\n".join(counts.crashes)
    assert counts.detected == counts.changed, (
        f"seed {SEED}: changed but not detected:\n" + "\n".join(counts.missed)
    )


async def test_every_flip_in_the_checkpoint_log_is_reported(
    pristine: Pristine, tmp_path: Path
) -> None:
    """A line that does not parse, a broken link, a wrong MAC: whatever the flip, verify
    says so, and never crashes."""
    rng = random.Random(SEED)
    unseen = []
    for n in range(LOG_FLIPS):
        at, mask = flip_copy(pristine.directory, tmp_path / str(n), LOG, rng)
        try:
            seen = await asyncio.wait_for(problems_seen(tmp_path / str(n), pristine.ring), TIMEOUT)
        except TimeoutError:
            pytest.fail(f"seed {SEED}, log flip {n} (offset {at}, mask {mask:#04x}): verify hung")
        if not seen:
            unseen.append(f"log flip {n} at {at} ^ {mask:#04x}")
    reported = LOG_FLIPS - len(unseen)
    print(f"\ncheckpoint log flips (seed {SEED}): {LOG_FLIPS} flips, {reported} reported")
    assert not unseen, f"seed {SEED}: not reported:\n" + "\n".join(unseen)
