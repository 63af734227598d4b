"""``chatd-cli passwd``, and the login after ``chatd user reset-password`` — real processes:
``chatd serve``, the ``chatd`` admin command, and chatd-cli in a pseudo-terminal or scripted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from chatd.gateway.protocol import CloseCode
from tests.cli.conftest import TIMEOUT, CliUser, MakeUser, Terminal
from tests.conftest import run_chatd
from tests.gateway.client import WsClient, pack
from tests.gateway.conftest import PASSWORD, Account, Admin

NEW_PASSWORD = "Le cabinet ouvre à 8h30"
OTHER_PASSWORD = "Visite à domicile mardi"
RULE_START = "A password has at least 12 characters, 6 of them different"
LOGGED_OUT = (CloseCode.LOGGED_OUT, "logged_out")


async def refused_on_connect(admin: Admin, token: str) -> tuple[int | None, str | None]:
    client = await WsClient.open(admin.server.ws_url)
    await client.send_raw(pack({"op": "auth", "rid": 1, "token": token}))
    return await client.wait_closed()


def in_dir(config_dir: Path, admin: Admin, account: Account) -> CliUser:
    """chatd-cli run with another config dir (none cached there unless a login puts one)."""
    return CliUser(account, config_dir, admin.server.base_url)


def scripted_login(
    config_dir: Path, admin: Admin, account: Account, stdin: str
) -> subprocess.CompletedProcess[str]:
    user = in_dir(config_dir, admin, account)
    return user.run("login", account.login, "--password-stdin", stdin=stdin)


def reset(admin: Admin, login: str) -> str:
    result = run_chatd(admin.server.data_dir, "user", "reset-password", login)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith(f"One-time password for {login}: ")
    assert "shown only this once" in " ".join(rest)
    return first.rsplit(" ", 1)[1]


async def test_passwd_changes_the_password_and_closes_the_other_sessions(
    cli_user: MakeUser, admin: Admin, tmp_path: Path
) -> None:
    alice = await cli_user()
    other_token = await admin.token(alice.account.id)
    phone = await admin.connect(token=other_token)
    terminal = Terminal(["passwd"], alice.env())
    try:
        terminal.wait("Current password:")
        terminal.type(PASSWORD + "\r")
        screen = terminal.wait("New password:")
        assert RULE_START in screen
        assert screen.index(RULE_START) < screen.index("New password:")  # said first
        terminal.type("motdepasse123\r")
        terminal.wait("Again:")
        terminal.type("motdepasse123\r")
        terminal.wait("most common passwords")  # refused by the server, asked again
        terminal.type(NEW_PASSWORD + "\r")
        terminal.wait("Again:")
        terminal.type(NEW_PASSWORD + "\r")
        terminal.wait("Password changed. 1 other session closed; this one stays open.")
        assert terminal.wait_exit() == 0
    finally:
        terminal.kill()
    for secret in (PASSWORD, NEW_PASSWORD, "motdepasse123"):
        assert secret.encode() not in terminal.output  # never echoed

    assert await phone.wait_closed() == LOGGED_OUT
    assert await refused_on_connect(admin, other_token) == LOGGED_OUT
    assert alice.run("ls").returncode == 0  # the session that changed it works on

    old = scripted_login(tmp_path / "old", admin, alice.account, PASSWORD + "\n")
    assert old.returncode == 3 and "Wrong login or password." in old.stderr
    new = scripted_login(tmp_path / "new", admin, alice.account, NEW_PASSWORD + "\n")
    assert new.returncode == 0, new.stderr


async def test_scripted_passwd_wrong_current_and_weak_new(cli_user: MakeUser) -> None:
    alice = await cli_user(first_name="Alice")
    wrong = alice.run("passwd", "--password-stdin", stdin=f"not it\n{NEW_PASSWORD}\n")
    assert wrong.returncode == 3
    assert "chatd-cli: The current password is wrong." in wrong.stderr
    for weak, sentence in [
        ("motdepasse123", "most common passwords"),
        (f"{alice.login} forever", "A password must not contain your login."),
        ("alice et moi au bureau", "A password must not contain your first or last name."),
        ("short", "A password has at least 12 characters; this one has 5."),
    ]:
        refused = alice.run("passwd", "--password-stdin", stdin=f"{PASSWORD}\n{weak}\n")
        assert refused.returncode == 1, refused.stderr
        assert sentence in refused.stderr
    empty = alice.run("passwd", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert empty.returncode == 2 and "No new password on stdin" in empty.stderr

    done = alice.run("--json", "passwd", "--password-stdin", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["changed"] is True and answer["sessions_revoked"] == 0
    assert RULE_START not in done.stderr  # scripts get no prompt, hence no rule


async def test_an_admin_reset_then_login_chooses_a_new_password(
    cli_user: MakeUser, admin: Admin, tmp_path: Path
) -> None:
    alice = await cli_user()
    watch = alice.watch()  # a live WebSocket session of the user
    one_time = reset(admin, alice.login)
    assert watch.proc.wait(TIMEOUT) == 3  # closed by the server's revocation sweep (4003)
    assert any("logged out; please log in again" in line for line in watch.stderr)

    old = scripted_login(tmp_path / "old", admin, alice.account, PASSWORD + "\n")
    assert old.returncode == 3 and "Wrong login or password." in old.stderr

    terminal = Terminal(["login", alice.login], alice.env())
    try:
        terminal.wait("Password:")
        terminal.type(one_time + "\r")
        screen = terminal.wait("New password:")
        assert "Your password was reset by an administrator" in screen
        assert screen.index(RULE_START) < screen.index("New password:")
        terminal.type(NEW_PASSWORD + "\r")
        terminal.wait("Again:")
        terminal.type(NEW_PASSWORD + "\r")
        terminal.wait("Logged in as Alice Test")
        assert terminal.wait_exit() == 0
    finally:
        terminal.kill()
    assert one_time.encode() not in terminal.output and NEW_PASSWORD.encode() not in terminal.output
    assert alice.run("ls").returncode == 0  # fully logged in: the gate is open
    assert (await admin.store.get_user(alice.account.id)).must_change_password is False
    again = scripted_login(tmp_path / "again", admin, alice.account, NEW_PASSWORD + "\n")
    assert again.returncode == 0, again.stderr
    replayed = scripted_login(tmp_path / "replay", admin, alice.account, one_time + "\n")
    assert replayed.returncode == 3  # a one-time password works once


async def test_a_scripted_login_after_reset_reads_the_new_password_from_stdin(
    cli_user: MakeUser, admin: Admin, tmp_path: Path
) -> None:
    alice = await cli_user()
    one_time = reset(admin, alice.login)
    config_dir = tmp_path / "config"
    weak = scripted_login(config_dir, admin, alice.account, f"{one_time}\nazertyuiop123\n")
    assert weak.returncode == 1
    assert "most common passwords" in weak.stderr and "You are not logged in" in weak.stderr
    assert not list(config_dir.glob("servers/*/session.json"))  # no gated session kept
    assert (await admin.store.get_user(alice.account.id)).must_change_password is True

    done = scripted_login(config_dir, admin, alice.account, f"{one_time}\n{OTHER_PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert "Logged in as" in done.stdout
    assert in_dir(config_dir, admin, alice.account).run("ls").returncode == 0
    assert (await admin.store.get_user(alice.account.id)).must_change_password is False
