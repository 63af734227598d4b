"""Passwords at the ``chatd`` admin command line (``user add``, ``user reset-password``) and in
the ``--help`` texts, run as real subprocesses — in a pseudo-terminal where a prompt matters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from chatd.core.password_policy import rule
from chatd.core.records import SessionToken
from chatd.crypto.passwords import verify_password
from tests.conftest import chatd_env, make_user, run_chatd
from tests.test_cli import ok, store_of

ADD_CAROL = ["user", "add", "carol.b", "--first-name", "Carole", "--last-name", "Bénard"]
RULE = rule("en")  # the admin command's tests run in an English terminal (chatd_env)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    ok(path, "init")
    return path


def flat(text: str) -> str:
    """Whitespace-insensitive: argparse re-wraps help texts to the terminal's width."""
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("password", "sentence"),
    [
        ("carol.b is the best", "A password must not contain your login."),
        ("chez les benard toujours", "A password must not contain your first or last name."),
        ("CAROLE au travail", "A password must not contain your first or last name."),
        ("Motdepasse123", "one of the most common passwords"),
        ("1qaz2wsx3edc", "one of the most common passwords"),
        ("qsdfghjklmwxcvbn", "keyboard or alphabet sequence"),
        ("121212121212121", "at least 6 different characters; this one has 2."),
    ],
)
def test_user_add_refuses_the_obvious_with_a_sentence(
    data_dir: Path, password: str, sentence: str
) -> None:
    result = run_chatd(data_dir, *ADD_CAROL, stdin=password + "\n")
    assert result.returncode == 2, result
    assert sentence in result.stderr
    assert "Traceback" not in result.stderr
    assert "carol" not in ok(data_dir, "user", "list")


def test_user_add_states_the_rule_before_prompting(data_dir: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatd", *ADD_CAROL],
        env=chatd_env(data_dir),
        encoding="utf-8",
        timeout=30,
        dimensions=(24, 300),
    )
    try:
        before_prompt = child.expect_exact(["Password:", pexpect.EOF])
        assert before_prompt == 0
        assert flat(RULE) in flat(child.before)  # said before the first prompt
        child.sendline("motdepasse123")  # refused at once, asked again
        child.expect_exact("one of the most common passwords")
        child.expect_exact("Password:")
        child.sendline("Trois patients à 14h")
        child.expect_exact("Again:")
        child.sendline("Trois patients à 14h")
        child.expect_exact("Created user 1 (carol.b).")
        child.expect_exact(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "Trois patients" not in child.before  # never echoed


async def test_reset_password_gives_a_one_time_password(data_dir: Path) -> None:
    async with store_of(data_dir) as store:
        user = await make_user(store, "dan.r")
        token = SessionToken(b"t" * 32, user.id, 0, 2**50)
        await store.create_session_token(token)
    answer = json.loads(ok(data_dir, "user", "reset-password", "DAN.R", "--json"))
    one_time = answer["one_time_password"]
    assert answer == {
        "id": user.id,
        "login": "dan.r",
        "one_time_password": one_time,
        "sessions_revoked": 1,
    }
    human = ok(data_dir, "user", "reset-password", "dan.r")
    second = human.splitlines()[0].rsplit(" ", 1)[1]
    assert second != one_time and "0 open sessions closed." in human
    async with store_of(data_dir) as store:
        stored = await store.get_user(user.id)
        revoked = await store.find_session_token(b"t" * 32)
    assert stored.must_change_password is True
    assert verify_password(second, stored.password_hash)
    assert not verify_password(one_time, stored.password_hash)  # the first one is gone
    assert revoked is not None and revoked.revoked_at is not None


def test_help_texts_state_the_rule(tmp_path: Path) -> None:
    add_help = run_chatd(tmp_path, "user", "add", "--help")
    assert add_help.returncode == 0 and flat(RULE) in flat(add_help.stdout)
    reset_help = run_chatd(tmp_path, "user", "reset-password", "--help")
    assert "one-time password" in flat(reset_help.stdout)
    users_help = run_chatd(tmp_path, "user", "--help")
    assert "reset-password" in users_help.stdout
    for command in ("passwd", "login"):
        cli_help = subprocess.run(
            [sys.executable, "-m", "clients.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
            env=chatd_env(tmp_path),  # an English terminal
        )
        assert flat(RULE) in flat(cli_help.stdout), command
