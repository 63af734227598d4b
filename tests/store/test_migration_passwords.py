"""SQLite: migration 4 (the must-change-password flag) on a database made by the code before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatd.crypto.keyring import KeyRing
from chatd.store.sqlite import SqliteStore
from chatd.store.sqlite.db import _statements
from chatd.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS
from tests.conftest import FAKE_PASSWORD_HASH, make_user


def trigger_sql(name: str, version: int) -> str:
    """A trigger as migration ``version`` created it."""
    (sql,) = [
        statement
        for statement in _statements(MIGRATIONS[version - 1].sql)
        if statement.startswith(f"CREATE TRIGGER {name} ")
    ]
    return sql


async def test_existing_users_need_not_change_their_password(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "chatd.sqlite3"
    async with SqliteStore(path, ring) as made:
        created = await make_user(made, "alice")
    # Back to the schema as the code before migration 4 left it: its columns gone (those and
    # the tables of later migrations too), its number not recorded.
    with sqlite3.connect(path) as conn:
        # Migration 10 (row MACs): its columns, and the triggers it replaced as they were.
        for table in ("users", "auth_tokens", "attachments", "memberships", "idempotency_keys"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN mac")
        for name, version in (
            ("attachments_reference_once", 3),
            ("memberships_close_once", 1),
            ("idempotency_keys_no_update", 1),
        ):
            conn.execute(f"DROP TRIGGER {name}")
            conn.execute(trigger_sql(name, version))
        for column in ("language", "password_changed_at", "must_change_password"):
            conn.execute(f"ALTER TABLE users DROP COLUMN {column}")
        conn.execute("DROP TABLE store_epoch")
        conn.execute("DROP TABLE login_attempts")
        conn.execute("DROP TABLE admin_audit")
        conn.execute("DROP TABLE upload_budgets")  # migration 12
        conn.execute("DROP TABLE live_sessions")  # migration 8
        conn.execute("DROP TRIGGER auth_tokens_revoke_once")
        for column in ("device", "last_seen_at"):
            conn.execute(f"ALTER TABLE auth_tokens DROP COLUMN {column}")
        conn.execute(  # as migration 1 made it
            "CREATE TRIGGER auth_tokens_revoke_once BEFORE UPDATE ON auth_tokens"
            " WHEN OLD.revoked_at IS NOT NULL OR NEW.token_hash IS NOT OLD.token_hash"
            " OR NEW.user_id IS NOT OLD.user_id OR NEW.expires_at IS NOT OLD.expires_at"
            " BEGIN SELECT RAISE(ABORT, 'a login token is only ever revoked'); END"
        )
        conn.execute("DELETE FROM schema_migrations WHERE version > 3")
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
        latest = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        assert latest == (LATEST_VERSION,)
        with pytest.raises(sqlite3.IntegrityError):  # the flag is 0 or 1, nothing else
            conn.execute("UPDATE users SET must_change_password = 2")
