"""``chatd migrate`` on PostgreSQL, as a real subprocess: the operator's one step before
starting the nodes, which never migrate a shared database themselves."""

from __future__ import annotations

import json
from pathlib import Path

from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.store.postgres.migrations import LATEST_VERSION
from tests.conftest import run_chatd


def test_nodes_refuse_an_unmigrated_database_until_chatd_migrate_ran(
    tmp_path: Path, postgres_dsn: str
) -> None:
    env = {"CHATD_DATABASE_URL": postgres_dsn}
    write_key_file(tmp_path / "master.keys", KeyRing.generate(), replace=False)
    refused = run_chatd(tmp_path, "user", "list", env=env)
    assert refused.returncode == 4, refused.stderr
    assert "chatd migrate" in refused.stderr
    assert f"version 0 and this chatd needs {LATEST_VERSION}" in refused.stderr

    first = run_chatd(tmp_path, "migrate", "--json", env=env)
    assert first.returncode == 0, first.stderr
    said = json.loads(first.stdout)
    assert (said["before"], said["after"]) == (0, LATEST_VERSION)
    assert "password" not in first.stdout and "@" not in said["database"]
    again = run_chatd(tmp_path, "migrate", "--json", env=env)
    assert json.loads(again.stdout)["before"] == LATEST_VERSION  # safe to repeat

    listed = run_chatd(tmp_path, "user", "list", env=env)
    assert listed.returncode == 0, listed.stderr


def test_init_on_postgres_migrates_and_migrate_on_sqlite_opens_the_file(
    tmp_path: Path, postgres_dsn: str
) -> None:
    env = {"CHATD_DATABASE_URL": postgres_dsn}
    made = run_chatd(tmp_path / "pg", "init", env=env)
    assert made.returncode == 0, made.stderr
    assert run_chatd(tmp_path / "pg", "user", "list", env=env).returncode == 0
    assert run_chatd(tmp_path, "init").returncode == 0
    done = run_chatd(tmp_path, "migrate", "--json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "chatd.sqlite3").exists()
