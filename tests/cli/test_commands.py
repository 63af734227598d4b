"""Each scriptable command against a real server, human and ``--json``, and its error exits."""

from __future__ import annotations

import json
import socket
import time

from tests.cli.conftest import HOUR_MS, CliUser, MakeUser, write_session
from tests.gateway.conftest import Account, Admin


def conv_of(user: CliUser, *args: str) -> str:
    (created,) = user.json("new", *args)
    return str(created["conv"])


async def test_whoami_ls_new_send_history_read(cli_user: MakeUser) -> None:
    alice, bob = await cli_user("Alice"), await cli_user("Bob")
    assert f"{alice.login} — Alice Test (Infirmière, CH Test)" in alice.ok("whoami").stdout
    (me,) = alice.json("whoami")
    assert me["user"]["id"] == alice.account.id and me["server"] == alice.server_url
    assert alice.json("ls") == []

    (created,) = alice.json(
        "new", "--to", bob.login, "--subject", "Suivi Mme D.", "Pouvez-vous passer ?", "--question"
    )
    assert (created["first_seq"], created["last_seq"], created["duplicate"]) == (1, 2, False)
    conv = str(created["conv"])
    assert "Sent to #" in alice.ok("send", conv, "Tension 14/9", "--important").stdout
    (sent,) = alice.json("send", f"#{conv}", "-", stdin="deux\nlignes\n")
    assert sent["op"] == "send" and sent["last_seq"] == 4 and len(sent["client_msg_id"]) == 32

    lines = bob.ok("history", conv).stdout.splitlines()
    assert "* Alice Test created « Suivi Mme D. »" in lines[0]
    assert lines[1].endswith("? Alice Test: Pouvez-vous passer ?")
    assert lines[2].endswith("! Alice Test: Tension 14/9")
    assert lines[3].endswith("  Alice Test: deux") and lines[4].strip() == "lignes"
    page = bob.json("history", conv, "--before", "4", "--limit", "2")
    assert [(e["seq"], e["kind"], e.get("tag")) for e in page] == [
        (2, "message", "question"),
        (3, "message", "important"),
    ]
    assert "--before 2" in bob.run("history", conv, "--before", "4", "--limit", "2").stderr

    (entry,) = bob.json("ls")
    assert (entry["conv"], entry["name"], entry["unread"]) == (int(conv), "Suivi Mme D.", 3)
    assert "3 unread" in bob.ok("ls").stdout
    (read,) = bob.json("read", conv)
    assert (read["read_seq"], read["unread"]) == (4, 0)
    assert "0 unread" in bob.ok("read", conv).stdout
    assert bob.json("ls")[0]["unread"] == 0


async def test_add_rename_leave(cli_user: MakeUser) -> None:
    alice, bob, carol = await cli_user("Alice"), await cli_user("Bob"), await cli_user("Carol")
    conv = conv_of(alice, "--to", bob.login, "--subject", "Staff")
    assert "Added Carol Test (CH Test) to #" in alice.ok("add", conv, carol.login.upper()).stdout
    (renamed,) = alice.json("rename", conv, "Staff HAD")
    assert renamed["op"] == "rename" and renamed["duplicate"] is False
    assert carol.json("ls")[0]["name"] == "Staff HAD"

    declined = bob.run("leave", conv, stdin="n\n")
    assert declined.returncode == 1 and "Not left." in declined.stderr
    bob.ok("send", conv, "still here")  # declining did not leave
    assert "You left #" in bob.ok("leave", conv, stdin="y\n").stdout
    (left,) = carol.json("leave", conv, "--yes")
    assert left["op"] == "leave"
    kinds = [(e["kind"], e.get("user")) for e in alice.json("history", conv)]
    assert kinds[-2:] == [("left", bob.account.id), ("left", carol.account.id)]
    assert "(left)" in bob.ok("ls").stdout


async def test_error_exits(cli_user: MakeUser) -> None:
    alice, bob = await cli_user("Alice"), await cli_user("Bob")
    conv = conv_of(alice, "--to", bob.login, "--subject", "Erreurs")

    missing = alice.run("history", "999999")
    assert missing.returncode == 4 and "not a participant" in missing.stderr
    not_sent = alice.run("--json", "send", "999999", "perdu")
    assert not_sent.returncode == 4
    error = json.loads(not_sent.stderr)
    assert (error["error"], error["exit"]) == ("conversation_not_found", 4)
    assert alice.json("outbox") == []  # a refusal leaves nothing queued

    unknown = alice.run("add", conv, "nobody.here")
    assert unknown.returncode == 4 and "nobody.here" in unknown.stderr
    assert alice.run("new", "--to", "nobody.here", "--subject", "x").returncode == 4
    already = alice.run("add", conv, bob.login)
    assert already.returncode == 1 and "already" in already.stderr
    blank = alice.run("rename", conv, "   ")
    assert blank.returncode == 1 and "name" in blank.stderr
    assert alice.run("send", "abc", "x").returncode == 2  # usage
    assert alice.run("send", conv, "   ").returncode == 2

    bob.ok("leave", conv, "--yes")
    gone = bob.run("send", conv, "trop tard")
    assert gone.returncode == 4 and "no longer a participant" in gone.stderr
    for result in (missing, not_sent, unknown, already, blank, gone):
        assert "Traceback" not in result.stderr


async def test_auth_exits(cli_user: MakeUser, admin: Admin) -> None:
    alice = await cli_user("Alice")
    nobody = CliUser(alice.account, alice.config_dir / "elsewhere", alice.server_url)
    result = nobody.run("ls")
    assert result.returncode == 3 and "not logged in" in result.stderr

    expired_here = await cli_user("Eve", expires_in_ms=-60_000)
    result = expired_here.run("ls")
    assert result.returncode == 3
    assert "expired; please log in again" in result.stderr and "Traceback" not in result.stderr

    # The cache says valid, the server knows better (close 4002).
    expired_there = await cli_user("Fred")
    token = await admin.token(expired_there.account.id, expires_in_ms=-500)
    now = time.time_ns() // 1_000_000
    write_session(
        expired_there.config_dir,
        expired_there.server_url,
        Account(expired_there.account.id, expired_there.login, token),
        now + HOUR_MS,
        "Fred",
    )
    result = expired_there.run("ls")
    assert result.returncode == 3 and "expired; please log in again" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_network_exits(cli_user: MakeUser) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    carol = await cli_user("Carol", server_url=dead)  # a session for a server that is gone
    result = carol.run("ls", "--timeout", "1")
    assert result.returncode == 5 and "connection refused" in result.stderr
    result = carol.run("login", "carol", "--password-stdin", stdin="secret\n")
    assert result.returncode == 5 and "Cannot reach" in result.stderr
    result = carol.run("send", "7", "en attente", "--timeout", "1")
    assert result.returncode == 5 and "queued" in result.stderr
    (entry,) = carol.json("outbox")
    assert (entry["op"], entry["conv"], entry["text"]) == ("send", 7, "en attente")


async def test_reads_against_a_stopped_server_fail_fast(cli_user: MakeUser) -> None:
    """``ls``/``history``/``whoami`` have nothing to wait for when the server refuses the
    connection: they say so at once instead of retrying for the whole ``--timeout``."""
    dead = f"http://127.0.0.1:{free_port()}"
    dan = await cli_user("Dan", server_url=dead)
    for command in (["ls"], ["history", "3"], ["whoami"]):
        # --timeout 600, but the process must be done well within the harness's 20 s.
        result = dan.run(*command, "--timeout", "600")
        assert result.returncode == 5, (command, result.stderr)
        assert "is it running?" in result.stderr and dead in result.stderr
