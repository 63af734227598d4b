"""``chatd backup`` and ``chatd restore`` on PostgreSQL, through the real command and the real
``pg_dump``/``pg_restore`` (PostgreSQL's client tools, from the test server's installation):
a backup taken while a node writes restores into an empty database, passes ``chatd verify``,
and announces a new epoch; the database URL's password never reaches a command line."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.store.postgres.store import PostgresStore
from tests.conftest import create_conv, make_users, post, run_chatd
from tests.servers.postgres import PostgresServer, installed_bin_dir


async def test_a_postgres_backup_restores_into_an_empty_database_and_verifies(
    tmp_path: Path, postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    live, backup, restored = tmp_path / "live", tmp_path / "backup", tmp_path / "restored"
    live.mkdir()
    ring = KeyRing.generate()
    write_key_file(live / "master.keys", ring, replace=False)
    tools = {"PATH": f"{installed_bin_dir()}{os.pathsep}{os.environ['PATH']}"}
    env = {"CHATD_DATABASE_URL": postgres_dsn, **tools}
    assert run_chatd(live, "migrate", env=env).returncode == 0
    log = live / "chatd.checkpoints"
    async with PostgresStore(
        postgres_dsn, ring, checkpoint_log=log, checkpoint_seconds=0.05, migrate=False
    ) as store:
        alice, bob = await make_users(store, "alice", "bob")
        conv = (await create_conv(store, alice, [bob], first="bonjour")).conv_id
        taking = asyncio.create_task(
            asyncio.to_thread(run_chatd, live, "backup", str(backup), env=env)
        )
        written = 0
        while not taking.done():  # a node goes on writing while the backup is taken
            await post(store, conv, bob, f"pendant la sauvegarde {written}")
            written += 1
        taken = await taking
        assert taken.returncode == 0, taken.stderr
        epoch = store.epoch
    assert (backup / "database.pgdump").stat().st_size > 0
    assert json.loads((backup / "manifest.json").read_text())["backend"] == "postgres"

    target = postgres_server.create_database(f"restored_{os.getpid()}")
    try:
        restored.mkdir()
        shutil.copy(live / "master.keys", restored / "master.keys")
        env_restored = {"CHATD_DATABASE_URL": target, **tools}
        done = run_chatd(restored, "restore", str(backup), "--json", env=env_restored)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["epoch"] != epoch
        checked = run_chatd(restored, "verify", env=env_restored)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        twice = run_chatd(restored, "restore", str(backup), env=env_restored)
        assert twice.returncode != 0 and "already exists" in twice.stderr
    finally:
        postgres_server.drop_database(f"restored_{os.getpid()}")


def test_a_backup_without_pg_dump_says_what_to_install(tmp_path: Path, postgres_dsn: str) -> None:
    write_key_file(tmp_path / "master.keys", KeyRing.generate(), replace=False)
    env = {"CHATD_DATABASE_URL": postgres_dsn, "PATH": str(tmp_path / "nothing-here")}
    said = run_chatd(tmp_path, "backup", str(tmp_path / "b"), env=env)
    assert said.returncode != 0
    assert "pg_dump is not installed" in said.stderr


def test_the_password_goes_to_the_tool_in_its_environment_never_in_its_arguments() -> None:
    from chatd.store.postgres.backup import _without_password

    url, env = _without_password(
        "postgresql://chatd:s3cr%3At@db.example:5433/chatd?sslmode=require"
    )
    assert url == "postgresql://chatd@db.example:5433/chatd?sslmode=require"
    assert env["PGPASSWORD"] == "s3cr:t"
