"""``chatd-cli sessions``: list one's sessions, end one or all the others — real processes
against a real server; the revoked sockets close at once."""

from __future__ import annotations

import asyncio
import json

from chatd.gateway.protocol import CloseCode
from chatd.services.auth import token_digest
from chatd.services.sessions import public_id
from tests.cli.conftest import FRENCH, MakeUser
from tests.gateway.conftest import Admin

N = "\u00a0"  # no-break space
F = "\u202f"  # narrow no-break space


async def test_sessions_lists_revokes_one_and_all_the_others(
    admin: Admin, cli_user: MakeUser
) -> None:
    user = await cli_user()
    phone_token, tablet_token = [await admin.token(user.account.id) for _ in range(2)]
    phone = await admin.connect(token=phone_token)
    tablet = await admin.connect(token=tablet_token)
    phone_id, tablet_id = (public_id(token_digest(t)) for t in (phone_token, tablet_token))

    listed = user.json("sessions")
    assert len(listed) == 3
    (mine,) = [s for s in listed if s["current"]]
    assert sorted(s["id"] for s in listed if not s["current"]) == sorted([phone_id, tablet_id])
    assert mine["connections"] == 1  # chatd-cli's own connection, while it asks
    human = user.ok("sessions")
    assert f"* {mine['id']}" in human.stdout
    assert phone_id in human.stdout and tablet_id in human.stdout
    assert "3 open sessions (* this one):" in human.stderr

    ended = user.ok("sessions", "revoke", phone_id)
    assert ended.stdout == f"Session {phone_id} ended.\n"
    assert await phone.wait_closed() == (CloseCode.LOGGED_OUT, "logged_out")  # at once
    await tablet.flush()  # the other one is still open

    again = user.run("sessions", "revoke", phone_id)
    assert again.returncode == 4 and "no open session with this number" in again.stderr

    result = user.ok("sessions", "revoke", "--all", "--json")
    assert json.loads(result.stdout)["revoked"] == 1
    assert await tablet.wait_closed() == (CloseCode.LOGGED_OUT, "logged_out")
    assert [s["id"] for s in user.json("sessions")] == [mine["id"]]  # this one stays


async def test_sessions_speaks_french_and_refuses_a_bad_command_line(cli_user: MakeUser) -> None:
    user = await cli_user()
    listed = user.ok("sessions", LANG=FRENCH)
    assert f"1 session ouverte (* celle-ci){N}:" in listed.stderr
    assert ", connexion le " in listed.stdout and ", dernière activité le " in listed.stdout
    assert "(1 connexion ouverte)" in listed.stdout
    done = user.ok("sessions", "revoke", "--all", LANG=FRENCH)
    assert done.stdout == f"0 autre session fermée{F}; celle-ci reste ouverte.\n"
    for args in (("sessions", "revoke"), ("sessions", "revoke", "abcd1234", "--all")):
        bad = user.run(*args, LANG=FRENCH)
        assert bad.returncode == 2, bad
        assert "Indiquez la session à fermer" in bad.stderr
    bad = user.run("sessions", "--all")
    assert bad.returncode == 2 and "chatd-cli sessions revoke ID, or --all" in bad.stderr


async def test_at_the_cap_chatd_cli_says_so_and_does_not_retry(
    admin: Admin, cli_user: MakeUser
) -> None:
    """The session server's cap is the default, 20 connections per user."""
    user = await cli_user()
    clients = [await admin.connect(user.account, sync=False) for _ in range(20)]
    refused = user.run("ls")
    assert refused.returncode == 1, refused
    assert "You already have 20 open sessions, the most allowed" in refused.stderr
    assert "chatd-cli sessions" in refused.stderr
    await clients[0].close()  # one place freed: chatd-cli gets in
    deadline = asyncio.get_running_loop().time() + 20
    while sum((await admin.store.live_session_counts(user.account.id, 0)).values()) != 19:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)  # polling the server's database, not synchronising
    user.ok("ls")
