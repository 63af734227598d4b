"""A conversation driven end to end through chatd-cli alone: two people (then a third)
talk, each watching the other live."""

from __future__ import annotations

import signal

from tests.cli.conftest import MakeUser


async def test_two_users_talk_through_the_cli(cli_user: MakeUser) -> None:
    alice, bob, carol = await cli_user("Alice"), await cli_user("Bob"), await cli_user("Carol")
    bob_watch = bob.watch()  # --json: every push, one object per line
    (created,) = alice.json("new", "--to", bob.login, "--subject", "Astreinte", "Bonjour Bob")
    conv = created["conv"]
    bob_watch.wait_stdout("Bonjour Bob")
    (entry,) = bob.json("ls")
    assert (entry["name"], entry["unread"], entry["member"]) == ("Astreinte", 1, True)

    alice_watch = alice.start("watch", "--conv", str(conv))  # human lines
    alice_watch.wait_stderr("Watching")
    bob.ok("send", str(conv), "Je passe à 14 h ?", "--question")
    line = alice_watch.wait_stdout("Je passe")
    assert line.startswith(f"#{conv} « Astreinte » [3] ")
    assert line.endswith("? Bob Test: Je passe à 14 h ?")
    bob.ok("read", str(conv))
    assert bob.json("ls")[0]["unread"] == 0

    bob.ok("add", str(conv), carol.login)
    alice_watch.wait_stdout("Bob Test added Carol Test")
    carol_history = carol.json("history", str(conv))
    assert [e["kind"] for e in carol_history] == ["joined"]  # she sees from her joining on
    alice.ok("rename", str(conv), "Astreinte HAD")
    carol.ok("send", str(conv), "Bien reçu", "--important")
    line = alice_watch.wait_stdout("Bien reçu")
    assert line.startswith(f"#{conv} « Astreinte HAD » [6] ") and "! Carol Test:" in line

    bob.ok("leave", str(conv), "--yes")
    alice_watch.wait_stdout("Bob Test left the conversation")
    alice.ok("send", str(conv), "Après le départ de Bob")
    alice_watch.wait_stdout("Après le départ")
    assert alice_watch.interrupt() == 0  # Ctrl-C ends a watch normally
    assert bob_watch.interrupt() == 0

    # Bob's watch saw each of his events once, in seq order, up to his own leaving.
    seen = [(p["seq"], p["kind"]) for p in bob_watch.json_lines() if p["op"] == "event"]
    assert seen == [
        (1, "created"),
        (2, "message"),
        (3, "message"),
        (4, "joined"),
        (5, "renamed"),
        (6, "message"),
        (7, "left"),
    ]
    assert [e["seq"] for e in bob.json("history", str(conv))] == [1, 2, 3, 4, 5, 6, 7]
    texts = [e.get("text") for e in carol.json("history", str(conv))]
    assert texts == [None, None, "Bien reçu", None, "Après le départ de Bob"]


async def test_ctrl_c_stops_a_watch_started_with_sigint_ignored(cli_user: MakeUser) -> None:
    """A script's background job (``chatd-cli watch &`` in a non-interactive shell, a CI
    runner) starts with SIGINT ignored; Ctrl-C — a SIGINT — must still stop the watch, at
    once and cleanly.  This is what made the suite red when it was itself run that way."""
    alice = await cli_user("Alice")
    watching = alice.start("watch", "--json", sigint_ignored=True)
    watching.wait_stderr("Watching")
    with open(f"/proc/{watching.proc.pid}/status") as status:
        ignored = next(int(x.split()[1], 16) for x in status if x.startswith("SigIgn:"))
    assert not ignored & (1 << (signal.SIGINT - 1))  # the client took SIGINT back
    assert watching.interrupt() == 0
    assert not any("Traceback" in line for line in watching.stderr)
