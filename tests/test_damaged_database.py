"""A damaged database (issue 12, item 5): every ``chatd`` command ends, and says so.

One letter changed in a trigger's SQL, or a few random byte flips, made ``chatd verify``,
``serve`` and ``user list`` print a traceback and then hang for ever (a connection left open
on a failed open kept its non-daemon thread alive).  The real commands run here as
subprocesses, each under a timeout, on damaged copies of a database with content.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.core.errors import DatabaseDamaged, DatabaseUnavailable
from chatd.crypto.keyring import load_key_file
from chatd.store.sqlite import SqliteStore
from chatd.store.sqlite.damage import SURROUNDING_CODES, classify
from tests.conftest import chatd_env, create_conv, make_users, post, run_chatd

EXIT_DAMAGED = 6
EXIT_REWOUND = 7
TIMEOUT = 60  # seconds for one command: it used to hang for ever
SEEDS, FLIPS = 20, 10


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with users, conversations and messages, its WAL checkpointed."""
    data_dir = tmp_path_factory.mktemp("pristine") / "data"
    assert run_chatd(data_dir, "init").returncode == 0

    async def fill() -> None:
        ring = load_key_file(data_dir / "master.keys")
        async with SqliteStore(data_dir / "chatd.sqlite3", ring) as store:
            users = await make_users(store, *(f"user{n}" for n in range(6)))
            for _ in range(4):
                conv = (await create_conv(store, users[0], users[1:3], first="bonjour")).conv_id
                for n in range(15):
                    await post(store, conv, users[n % 3], f"message {n}")

    asyncio.run(fill())
    assert not (data_dir / "chatd.sqlite3-wal").exists() or (
        (data_dir / "chatd.sqlite3-wal").stat().st_size == 0
    )
    return data_dir


def copy_of(pristine: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(pristine, data_dir)
    return data_dir


def edit_a_trigger(database: Path) -> None:
    """One letter of a trigger's SQL changed, in the schema table itself."""
    conn = sqlite3.connect(database)
    try:
        name, sql = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        ).fetchone()
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = ? WHERE name = ?",
            (sql.replace("BEGIN", "BEGIX", 1), name),
        )
        conn.commit()
    finally:
        conn.close()


def flip_bytes(database: Path, seed: int, flips: int = FLIPS) -> None:
    data = bytearray(database.read_bytes())
    rng = random.Random(seed)
    for _ in range(flips):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
    database.write_bytes(data)


def chatd(
    data_dir: Path, *args: str, lang: str = "en_GB.UTF-8"
) -> subprocess.CompletedProcess[str]:
    result = run_chatd(data_dir, *args, env={"LANG": lang}, timeout=TIMEOUT)
    assert "Traceback" not in result.stderr, (args, result.stderr)
    return result


def serve_ends(data_dir: Path) -> tuple[int, str]:
    """Run ``chatd serve``; if it comes up, stop it with SIGTERM.  Its exit code and log."""
    log_path = data_dir.parent / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=chatd_env(data_dir, {"CHATD_PORT": "0"}),
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while proc.poll() is None:
            match = re.search(r"chatd listening on (\S+)", log_path.read_text(errors="replace"))
            if match and _healthy(match.group(1)):
                proc.send_signal(signal.SIGTERM)
                break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)  # polling a child process's log, not synchronising
        code = proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, log_path.read_text(errors="replace")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


# ----------------------------------------------------------------------------- one letter


STORE_COMMANDS = [
    ["verify"],
    ["user", "list"],
    ["user", "list", "--json"],
    ["user", "disable", "user1"],
    ["keys", "list"],
    ["retention", "run", "--dry-run"],
    ["store", "new-epoch"],
    ["init"],
]


def test_an_edited_trigger_makes_every_command_say_database_damaged(
    pristine: Path, tmp_path: Path
) -> None:
    data_dir = copy_of(pristine, tmp_path)
    edit_a_trigger(data_dir / "chatd.sqlite3")
    for command in STORE_COMMANDS:
        result = chatd(data_dir, *command)
        assert result.returncode == EXIT_DAMAGED, (command, result)
        assert "database damaged: malformed database schema" in result.stderr, command
        assert result.stderr.count("\n") <= 2, result.stderr  # one line, no traceback
    code, log = serve_ends(data_dir)
    assert code == EXIT_DAMAGED, log
    assert "database damaged" in log and "Traceback" not in log


def test_the_damage_is_said_in_french_first(pristine: Path, tmp_path: Path) -> None:
    data_dir = copy_of(pristine, tmp_path)
    edit_a_trigger(data_dir / "chatd.sqlite3")
    result = chatd(data_dir, "user", "list", lang="fr_FR.UTF-8")
    assert result.returncode == EXIT_DAMAGED
    assert "base de données endommagée\u00a0: malformed database schema" in result.stderr


def test_verify_json_stays_one_report_on_a_database_that_does_not_open(
    pristine: Path, tmp_path: Path
) -> None:
    data_dir = copy_of(pristine, tmp_path)
    edit_a_trigger(data_dir / "chatd.sqlite3")
    result = chatd(data_dir, "verify", "--json")
    assert result.returncode == EXIT_DAMAGED
    report = json.loads(result.stdout)
    assert report["conversations"] == 0
    [problem] = report["problems"]
    assert problem["reason"].startswith("database damaged: malformed database schema")


# ----------------------------------------------------------------------------- byte flips


def test_random_byte_flips_never_hang_nor_print_a_traceback(pristine: Path, tmp_path: Path) -> None:
    damaged = 0
    for seed in range(SEEDS):
        data_dir = copy_of(pristine, tmp_path / str(seed))
        flip_bytes(data_dir / "chatd.sqlite3", seed)
        verify = chatd(data_dir, "verify", "--json")
        assert verify.returncode in (0, 1, EXIT_DAMAGED), (seed, verify)
        report = json.loads(verify.stdout)  # intact JSON, whatever broke
        assert (verify.returncode == 0) == (report["problems"] == []), (seed, report)
        listing = chatd(data_dir, "user", "list")
        # 4: a profile that does not open (an integrity error, not a damaged file).
        assert listing.returncode in (0, 4, EXIT_DAMAGED), (seed, listing)
        code, log = serve_ends(data_dir)
        # 4 as well: a sealed key the server needs at start (the directory's) does not open;
        # 7: a flipped hash or seq makes the log no longer extend its last checkpoint, which
        # the server refuses to serve (named, with what to do), as it would a rewound copy.
        assert code in (0, 4, EXIT_DAMAGED, EXIT_REWOUND), (seed, log)
        assert "Traceback" not in log, (seed, log)
        damaged += verify.returncode == EXIT_DAMAGED or "database damaged" in verify.stdout
    assert damaged >= 3, "the flips should have damaged the file itself several times"


def test_verify_reports_sqlite_s_own_integrity_check(pristine: Path, tmp_path: Path) -> None:
    """Damage no query of the audit reads (an index page) is still found and reported."""
    data_dir = copy_of(pristine, tmp_path)
    database = data_dir / "chatd.sqlite3"
    conn = sqlite3.connect(database)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            " ORDER BY name"
        ).fetchone()[0]
    finally:
        conn.close()
    data = bytearray(database.read_bytes())
    start = (root - 1) * page_size
    data[start + page_size // 2 : start + page_size] = bytes(page_size - page_size // 2)
    database.write_bytes(data)
    result = chatd(data_dir, "verify", "--json")
    assert result.returncode == 1, result  # opened, audited, found broken
    report = json.loads(result.stdout)
    assert report["conversations"] == 4  # the audit went on past the damage
    reasons = [p["reason"] for p in report["problems"]]
    assert any(reason.startswith("database damaged:") for reason in reasons), reasons
    assert not any("\n" in reason for reason in reasons)  # one line each


# ----------------------------------------------------------------------------- in process


async def test_a_failed_open_leaves_no_thread_behind(pristine: Path, tmp_path: Path) -> None:
    data_dir = copy_of(pristine, tmp_path)
    edit_a_trigger(data_dir / "chatd.sqlite3")
    before = set(threading.enumerate())
    store = SqliteStore(data_dir / "chatd.sqlite3", load_key_file(data_dir / "master.keys"))
    with pytest.raises(DatabaseDamaged):
        async with store:
            pass
    # Each connection's thread was told to stop; it ends on its own (a left-open connection's
    # thread never would: that was the hang).
    for thread in set(threading.enumerate()) - before:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), thread


def _sqlite_error(kind: type[sqlite3.Error], code: int) -> sqlite3.Error:
    exc = kind("some words")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@given(
    st.sampled_from([sqlite3.DatabaseError, sqlite3.OperationalError, sqlite3.DataError]),
    st.integers(0, 0xFFFF),
)
def test_a_file_error_is_always_ours(kind: type[sqlite3.Error], code: int) -> None:
    """Every error about the file becomes one of ours: unavailable for its surroundings
    (codes that a backup would not cure), damaged for everything else."""
    ours = classify(_sqlite_error(kind, code))
    if code & 0xFF in SURROUNDING_CODES:
        assert isinstance(ours, DatabaseUnavailable)
    else:
        assert isinstance(ours, DatabaseDamaged)
        assert ours.message == "database damaged: some words"


@given(
    st.sampled_from([sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError]),
    st.integers(0, 0xFFFF),
)
def test_a_refusal_or_a_mistake_is_left_alone(kind: type[sqlite3.Error], code: int) -> None:
    """A constraint violation is a rule's refusal the code expects, not a damaged file."""
    assert classify(_sqlite_error(kind, code)) is None
