"""login, logout, whoami over the HTTP routes; the token cache; terms on first login."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from clients.cli.config import server_dir
from tests.cli.conftest import TIMEOUT, MakeUser, Terminal, cli_env, run_cli
from tests.gateway.conftest import PASSWORD, TERMS, TERMS_URL, Admin


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m clients.cli``: the module form of chatd-cli."""
    return run_cli(env, *args, stdin=stdin, as_module=True)


def session_file(config_dir: Path, server_url: str) -> Path:
    (path,) = (config_dir / "servers").glob("*/session.json")
    assert path.parent.name == server_dir(server_url).name
    return path


async def test_login_prompts_without_echo_shows_terms_and_caches_the_token(
    admin: Admin, tmp_path: Path
) -> None:
    account = await admin.user(first_name="Claire", terms=False)
    config_dir = tmp_path / "config"
    env = cli_env(config_dir, admin.server.base_url)
    login = Terminal(["login", account.login], env)
    try:
        login.wait("Password:")
        login.type(PASSWORD + "\r")
        screen = login.wait(f"Accept the terms of use, version {TERMS}? [y/N]")
        assert "you must accept the terms of use" in screen
        assert f"read them at {TERMS_URL}" in screen.replace("\n", "")
        login.type("y\r")
        login.wait("Logged in as Claire Test")
        assert login.wait_exit() == 0
    finally:
        login.kill()
    assert PASSWORD.encode() not in login.output  # never echoed

    path = session_file(config_dir, admin.server.base_url)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    cached = json.loads(path.read_text())
    assert cached["user"]["login"] == account.login and cached["server"] == admin.server.base_url
    whoami = run(env, "whoami")
    assert whoami.returncode == 0 and cached["token"] not in whoami.stdout + whoami.stderr
    assert f"{account.login} — Claire Test" in whoami.stdout

    token_text = path.read_text()
    assert "Logged out" in run(env, "logout").stdout
    assert not path.exists()
    assert run(env, "ls").returncode == 3  # nothing cached any more
    path.write_text(token_text)  # even a copy of the old token is refused: it was revoked
    revoked = run(env, "ls")
    assert revoked.returncode == 3 and "logged out; please log in again" in revoked.stderr


async def test_scripted_login_wrong_password_and_declined_terms(
    admin: Admin, tmp_path: Path
) -> None:
    account = await admin.user(terms=False)
    env = cli_env(tmp_path / "config", admin.server.base_url)
    wrong = run(env, "login", account.login, "--password-stdin", stdin="not it\n")
    assert wrong.returncode == 3 and "Wrong login or password." in wrong.stderr
    declined = run(env, "login", account.login, "--password-stdin", stdin=f"{PASSWORD}\nn\n")
    assert declined.returncode == 3 and "not accepted" in declined.stderr
    assert not (tmp_path / "config" / "servers").exists() or not list(
        (tmp_path / "config" / "servers").glob("*/session.json")
    )
    scripted = run(
        env,
        "--json",
        "login",
        account.login,
        "--password-stdin",
        "--accept-terms",
        stdin=PASSWORD + "\n",
    )
    assert scripted.returncode == 0, scripted.stderr
    assert json.loads(scripted.stdout)["user"]["id"] == account.id
    assert run(env, "ls").returncode == 0  # terms accepted: the WebSocket lets us in


async def test_watch_ends_with_the_auth_code_when_logged_out(cli_user: MakeUser) -> None:
    alice = await cli_user()
    watch = alice.watch()
    alice.ok("logout")  # revokes the token: the server closes its sockets (4003)
    assert watch.proc.wait(TIMEOUT) == 3
    assert any("logged out; please log in again" in line for line in watch.stderr)
