"""Nothing in clear at rest: message text, conversation names and profiles are sealed in the
database file and in its -wal and -shm companions, while the store runs and after it closed."""

from __future__ import annotations

import stat
from pathlib import Path

from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.store.sqlite import SqliteStore
from tests.conftest import add_member, create_conv, make_user, post, rename

CANARY = "Canary-7f3a9c-PatientDupont"


def database_files(db: Path) -> list[Path]:
    return [
        p
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if p.exists()
    ]


def raw_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in database_files(db))


def forms(text: str) -> list[bytes]:
    """The canary as it could be stored: UTF-8, UTF-16, and a bare distinctive part."""
    return [
        text.encode(),
        text.encode("utf-16-le"),
        text.encode("utf-16-be"),
        b"7f3a9c",
        text.lower().encode(),
    ]


def assert_no_canary(db: Path) -> None:
    data = raw_bytes(db)
    assert data, "no database bytes were read"
    for form in forms(CANARY):
        assert form not in data, f"{form!r} found in clear in {database_files(db)}"


async def test_canary_is_never_stored_in_clear(tmp_path: Path, ring: KeyRing) -> None:
    db = tmp_path / "data" / "chatd.sqlite3"
    store = SqliteStore(db, ring, synchronous="FULL")
    await store.open()
    try:
        alice = await make_user(
            store,
            "visible.login",  # logins are clear metadata: our control that the scan works
            first_name=f"{CANARY}-first",
            last_name=f"{CANARY}-last",
            email=f"{CANARY}@example.org",
        )
        bob = await make_user(store, "bob")
        carol = await make_user(store, "carol", first_name=CANARY)
        conv = (
            await create_conv(
                store, alice.id, [bob.id], name=f"{CANARY} name", first=f"{CANARY} first message"
            )
        ).conv_id
        for i in range(50):
            await post(store, conv, bob.id, f"{CANARY} message {i}")
        await rename(store, conv, alice.id, f"{CANARY} renamed")
        await add_member(store, conv, bob.id, carol.id)
        await store.set_user_disabled(carol.id, True)  # rewrites the user's row
        # Reading it back works, so the canary is really in there, sealed.
        window = await store.visible_window(bob.id, conv)
        assert window.events[-3].payload["text"] == f"{CANARY} message 49"
        assert (await store.get_user(alice.id)).profile.email == f"{CANARY}@example.org"

        wal = db.with_name(db.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0, "expected the writes in the WAL"
        assert b"visible.login" in raw_bytes(db)  # the scan sees what is written
        assert_no_canary(db)
    finally:
        await store.close()
    assert b"visible.login" in raw_bytes(db)
    assert_no_canary(db)


async def test_file_modes(tmp_path: Path, ring: KeyRing) -> None:
    data_dir = tmp_path / "data"
    key_file = data_dir / "master.keys"
    write_key_file(key_file, ring, replace=False)
    db = data_dir / "chatd.sqlite3"
    store = SqliteStore(db, ring)
    await store.open()
    try:
        a = await make_user(store, "alice")
        b = await make_user(store, "bob")
        await create_conv(store, a.id, [b.id], first="hello")
        files = database_files(db)
        assert len(files) == 3  # database, -wal, -shm while open
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        await store.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
