"""SQLite: migration 4 (the must-change-password flag) on a database made by the code before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatd.crypto.keyring import KeyRing
from chatd.store import sqlite as sqlite_module
from chatd.store import sqlite_db
from chatd.store.migrations import MIGRATIONS
from chatd.store.sqlite import SqliteStore
from tests.conftest import FAKE_PASSWORD_HASH, make_user


async def test_existing_users_need_not_change_their_password(
    tmp_path: Path, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chatd.sqlite3"
    with monkeypatch.context() as before:  # the code as it was before migration 4
        before.setattr(sqlite_db, "MIGRATIONS", MIGRATIONS[:3])
        before.setattr(sqlite_db, "LATEST_VERSION", 3)
        columns = sqlite_module._USER_COLUMNS.replace("must_change_password", "0")
        before.setattr(sqlite_module, "_USER_COLUMNS", columns)  # reads without the column
        async with SqliteStore(path, ring) as old:
            created = await make_user(old, "alice")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (3,)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
        assert "must_change_password" not in columns

    async with SqliteStore(path, ring) as store:
        user = await store.get_user(created.id)
        assert user.must_change_password is False
        assert (user.login, user.password_hash) == ("alice", FAKE_PASSWORD_HASH)
        await store.reset_password(user.id, "x", now_ms=5)
        assert (await store.get_user(user.id)).must_change_password is True
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (4,)
        with pytest.raises(sqlite3.IntegrityError):  # the flag is 0 or 1, nothing else
            conn.execute("UPDATE users SET must_change_password = 2")
