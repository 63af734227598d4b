"""The ``chatd`` admin command line, run as real subprocesses on a temporary data dir."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from chatd.core.errors import ConversationShreddedError
from chatd.crypto.keyring import load_key_file, write_key_file
from chatd.crypto.passwords import verify_password
from chatd.store.sqlite import SqliteStore
from tests.conftest import create_conv, make_users, post, run_chatd

MS_PER_YEAR = 365.25 * 24 * 3600 * 1000


def ok(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    result = run_chatd(data_dir, *args, stdin=stdin)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def store_of(data_dir: Path, **options: object) -> SqliteStore:
    return SqliteStore(
        data_dir / "chatd.sqlite3", load_key_file(data_dir / "master.keys"), **options
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    assert "Created key file" in ok(path, "init")
    return path


def test_init_twice_keeps_the_key_file(data_dir: Path) -> None:
    key_file = data_dir / "master.keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "chatd.sqlite3").stat().st_mode) == 0o600
    before = key_file.read_bytes()
    out = ok(data_dir, "init")
    assert "already exists; kept" in out
    assert key_file.read_bytes() == before


def test_init_refuses_a_readable_key_file(data_dir: Path) -> None:
    (data_dir / "master.keys").chmod(0o644)
    for command in (["init"], ["verify"], ["user", "list"]):
        result = run_chatd(data_dir, *command)
        assert result.returncode == 3, result
        assert "chmod 600" in result.stderr
        assert "Traceback" not in result.stderr


def test_missing_key_file_is_a_key_error(tmp_path: Path) -> None:
    result = run_chatd(tmp_path / "empty", "verify")
    assert result.returncode == 3
    assert "chatd init" in result.stderr


async def test_users_add_list_disable(data_dir: Path) -> None:
    password = "S3cret pass phrase"
    out = ok(
        data_dir,
        "user", "add", "Alice.M", "--first-name", "Anne", "--last-name", "Martin",
        "--profession", "Médecin généraliste", "--structure", "Cabinet du Parc",
        "--email", "anne@example.org", "--rpps", "10003456789", "--json",
        stdin=password + "\n",
    )  # fmt: skip
    assert json.loads(out) == {"id": 1, "login": "alice.m", "language": None}
    ok(data_dir, "user", "add", "bob", "--first-name", "Bob", "--last-name", "Durand",
       "--language", "en", stdin="another pass phrase\n")  # fmt: skip

    duplicate = run_chatd(
        data_dir, "user", "add", "ALICE.M", "--first-name", "X", "--last-name", "Y",
        stdin="long enough password\n",
    )  # fmt: skip
    assert duplicate.returncode not in (0, 1)
    assert "already in use" in duplicate.stderr

    listed = [json.loads(line) for line in ok(data_dir, "user", "list", "--json").splitlines()]
    assert [(u["id"], u["login"], u["language"], u["disabled"]) for u in listed] == [
        (1, "alice.m", None, False),
        (2, "bob", "en", False),
    ]
    assert listed[0] | {"disabled": False} == {
        "id": 1,
        "login": "alice.m",
        "first_name": "Anne",
        "last_name": "Martin",
        "profession": "Médecin généraliste",
        "structure": "Cabinet du Parc",
        "email": "anne@example.org",
        "rpps": "10003456789",
        "language": None,
        "disabled": False,
    }
    human = ok(data_dir, "user", "list").splitlines()
    assert human[0].split()[1:4] == ["alice.m", "-", "Anne"]  # no language chosen: "-"
    assert human[1].split()[1:4] == ["bob", "en", "Bob"]
    assert "Anne Martin" in human[0]

    assert "disabled" in ok(data_dir, "user", "disable", "alice.m")
    listed = [json.loads(line) for line in ok(data_dir, "user", "list", "--json").splitlines()]
    assert [u["disabled"] for u in listed] == [True, False]
    assert "[disabled]" in ok(data_dir, "user", "list")
    ok(data_dir, "user", "enable", "ALICE.M")
    listed = [json.loads(line) for line in ok(data_dir, "user", "list", "--json").splitlines()]
    assert [u["disabled"] for u in listed] == [False, False]
    unknown = run_chatd(data_dir, "user", "disable", "nobody")
    assert unknown.returncode == 1 and "nobody" in unknown.stderr

    async with store_of(data_dir) as store:
        alice = await store.get_user(1)
    assert verify_password(password, alice.password_hash)
    assert not verify_password("wrong", alice.password_hash)
    assert password not in out


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_user_add_refuses_a_short_password(data_dir: Path, password: str) -> None:
    result = run_chatd(
        data_dir, "user", "add", "carol", "--first-name", "C", "--last-name", "D",
        stdin=password + "\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert "at least 12 characters" in result.stderr
    listed = run_chatd(data_dir, "user", "list", "--json")
    assert "carol" not in listed.stdout


async def test_verify_ok(data_dir: Path) -> None:
    async with store_of(data_dir) as store:
        a, b = await make_users(store, "alice", "bob")
        conv = (await create_conv(store, a, [b], first="hello")).conv_id
        await post(store, conv, b, "hi")
    out = ok(data_dir, "verify")
    assert "1 conversation, 3 events, 0 attachments checked: OK" in out
    assert json.loads(ok(data_dir, "verify", "--json"))["events"] == 3


async def test_keys_rotate_then_retire_the_old_key(data_dir: Path) -> None:
    async with store_of(data_dir) as store:
        a, b = await make_users(store, "alice", "bob")
        conv = (await create_conv(store, a, [b], first="before rotation")).conv_id
    old = load_key_file(data_dir / "master.keys").active_id
    assert ok(data_dir, "keys", "list").split() == [old, "active,", "in", "use"]

    out = ok(data_dir, "keys", "rotate")
    ring = load_key_file(data_dir / "master.keys")
    new = ring.active_id
    assert new != old and set(ring.keys) == {old, new}
    assert f"New active key {new}; 2 data keys re-wrapped." in out
    assert f"chatd keys retire {old}" in out
    listing = [line.rstrip() for line in ok(data_dir, "keys", "list").splitlines()]
    assert listing == [old, f"{new}  active, in use"]  # the old key: neither active nor used

    refused = run_chatd(data_dir, "keys", "retire", new)
    assert refused.returncode == 3
    assert set(load_key_file(data_dir / "master.keys").keys) == {old, new}

    assert f"Key {old} retired." in ok(data_dir, "keys", "retire", old)
    ring = load_key_file(data_dir / "master.keys")
    assert set(ring.keys) == {new}
    assert stat.S_IMODE((data_dir / "master.keys").stat().st_mode) == 0o600
    assert "OK" in ok(data_dir, "verify")
    async with store_of(data_dir) as store:
        window = await store.visible_window(b, conv)
        assert window.events[-1].payload["text"] == "before rotation"
        assert (await store.get_user(a)).login == "alice"


async def test_retiring_a_key_still_in_use_is_refused(data_dir: Path) -> None:
    """As after a crash between writing the new key file and re-wrapping."""
    async with store_of(data_dir) as store:
        await make_users(store, "alice")
    ring = load_key_file(data_dir / "master.keys")
    old = ring.active_id
    write_key_file(data_dir / "master.keys", ring.with_new_active(), replace=True)
    result = run_chatd(data_dir, "keys", "retire", old)
    assert result.returncode == 3
    assert "still wraps data keys" in result.stderr
    assert old in load_key_file(data_dir / "master.keys").keys
    unknown = run_chatd(data_dir, "keys", "retire", "deadbeef")
    assert unknown.returncode == 3
    # A later rotate re-wraps everything; then the old key may go.
    ok(data_dir, "keys", "rotate")
    ok(data_dir, "keys", "retire", old)
    assert "OK" in ok(data_dir, "verify")


async def test_retention_dry_run_then_apply(data_dir: Path) -> None:
    eleven_years_ago = int(time.time() * 1000 - 11 * MS_PER_YEAR)
    async with store_of(data_dir, clock_ms=lambda: eleven_years_ago) as store:
        a, b = await make_users(store, "alice", "bob")
        old = [(await create_conv(store, a, [b], first="old")).conv_id for _ in range(2)]
    async with store_of(data_dir) as store:
        fresh = (await create_conv(store, a, [b], first="fresh")).conv_id

    dry = run_chatd(data_dir, "retention", "run", "--dry-run", "--json")
    assert dry.returncode == 1, dry
    assert json.loads(dry.stdout) == {"applied": False, "conversations": old}
    human = run_chatd(data_dir, "retention", "run", "--dry-run")
    assert human.returncode == 1
    assert f"Would shred 2 conversations: {old[0]}, {old[1]}" in human.stdout
    async with store_of(data_dir) as store:  # a dry run changes nothing
        assert len((await store.visible_window(a, old[0])).events) == 2

    applied = json.loads(ok(data_dir, "retention", "run", "--apply", "--json"))
    assert applied == {"applied": True, "conversations": old}
    again = run_chatd(data_dir, "retention", "run", "--dry-run", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["conversations"] == []
    assert "OK" in ok(data_dir, "verify")

    async with store_of(data_dir) as store:
        for conv in old:
            with pytest.raises(ConversationShreddedError):
                await store.visible_window(a, conv)
        assert (await store.visible_window(b, fresh)).events[-1].payload["text"] == "fresh"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CHATD_VISIBLE_WINDOW", "lots"), ("CHATD_SQLITE_SYNCHRONOUS", "OFF"), ("CHATD_TYPO", "1")],
)
def test_invalid_configuration_exits_2(data_dir: Path, variable: str, value: str) -> None:
    result = run_chatd(data_dir, "verify", env={variable: value})
    assert result.returncode == 2, result
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_help_and_settings(tmp_path: Path) -> None:
    usage = run_chatd(tmp_path, "--help")
    assert usage.returncode == 0
    for command in ("init", "verify", "keys", "retention", "user"):
        assert command in usage.stdout
    settings = ok(tmp_path, "settings")
    assert "CHATD_VISIBLE_WINDOW" in settings and "CHATD_DATA_DIR" in settings
    rows = {line.split()[0]: line.split()[1] for line in settings.splitlines()}
    assert (rows["CHATD_DATA_DIR"], rows["CHATD_SQLITE_SYNCHRONOUS"]) == ("var", "FULL")
    assert "PosixPath" not in settings and "'" not in settings and "None" not in settings
    bad = run_chatd(tmp_path, "retention", "run")  # --dry-run or --apply is required
    assert bad.returncode == 2


def test_every_admin_command_runs_in_a_terminal_set_up_for_chatd_cli(tmp_path: Path) -> None:
    """The README has terminal A ``export CHATD_CLI_CONFIG_DIR=…``; chatd-cli's variables
    (and the older ``CHATD_SERVER``) are not the server's, and no admin command refuses them."""
    data = tmp_path / "data"
    client = {
        "CHATD_CLI_CONFIG_DIR": str(tmp_path / "cli-claire"),
        "CHATD_CLI_SERVER": "http://127.0.0.1:8470",
        "CHATD_SERVER": "http://127.0.0.1:8470",
    }
    commands = [
        ["init"],
        ["settings"],
        ["user", "add", "c.dupont", "--first-name", "Claire", "--last-name", "Dupont"],
        ["user", "list"],
        ["user", "disable", "c.dupont"],
        ["user", "enable", "c.dupont"],
        ["verify"],
        ["keys", "list"],
        ["keys", "rotate"],
        ["retention", "run", "--dry-run"],
    ]
    for args in commands:
        stdin = "un mot de passe solide\n" if args[:2] == ["user", "add"] else None
        result = run_chatd(data, *args, stdin=stdin, env=client)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "not a chatd setting" not in result.stderr


def test_user_list_leaves_out_what_is_empty(data_dir: Path) -> None:
    args = ["user", "add", "p.martin", "--first-name", "Paul", "--last-name", "Martin"]
    ok(data_dir, *args, stdin="un mot de passe solide\n")
    (line,) = [x for x in ok(data_dir, "user", "list").splitlines() if "p.martin" in x]
    assert line.rstrip().endswith("Paul Martin"), line  # no dangling ", " nor "()"
