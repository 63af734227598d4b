"""The interactive view, driven through a pseudo-terminal and read through a terminal
emulator: what is typed reaches the other person's ``watch``, what they send appears."""

from __future__ import annotations

from tests.cli.conftest import MakeUser, Terminal


async def test_chat_view_through_a_pty(cli_user: MakeUser) -> None:
    alice, bob, carol = await cli_user("Alice"), await cli_user("Bob"), await cli_user("Carol")
    (created,) = alice.json("new", "--to", bob.login, "--subject", "Visite", "Bonjour")
    conv = str(created["conv"])
    bob_watch = bob.watch()
    chat = Terminal(["chat", conv], alice.env())
    try:
        screen = chat.wait("[connected]")
        assert f"#{conv} « Visite »" in screen  # the header: name, members, state
        assert "Members: Alice Test (CH Test), Bob Test (CH Test)" in screen
        assert "Alice Test: Bonjour" in screen

        chat.type("Tension 14/9 ce matin\r")
        event = bob_watch.wait_stdout("Tension 14/9")
        assert '"tag":null' in event and f'"sender":{alice.account.id}' in event
        chat.wait("  Alice Test: Tension 14/9 ce matin")

        bob.ok("send", conv, "Je passe à 14 h ?", "--question")
        chat.wait("? Bob Test: Je passe à 14 h ?")  # live, while the input line is idle

        chat.type("/important Allergie pénicilline\r")
        assert '"tag":"important"' in bob_watch.wait_stdout("Allergie")
        chat.wait("! Alice Test: Allergie pénicilline")
        chat.type("/rename Visite HAD\r")
        bob_watch.wait_stdout('"name":"Visite HAD"')
        chat.wait(f"#{conv} « Visite HAD »")
        chat.type(f"/add {carol.login}\r")
        bob_watch.wait_stdout(f'"user":{carol.account.id}')
        chat.wait("Alice Test added Carol Test")
        chat.wait("Members: Alice Test (CH Test), Bob Test (CH Test), Carol Test (CH Test)")
        chat.type("/nope\r")
        chat.wait("Unknown command /nope")
        chat.type("/leave\r")
        chat.wait("Type /leave again")
        chat.type("/leave\r")
        chat.wait("(you left: read-only)")
        bob_watch.wait_stdout('"kind":"left"')
        chat.type("/quit\r")
        assert chat.wait_exit() == 0
    finally:
        chat.kill()
    texts = [e.get("text") for e in bob.json("history", conv)]
    assert texts.count("Tension 14/9 ce matin") == 1  # sent once
    assert bob.json("ls")[0]["name"] == "Visite HAD"
    assert alice.json("ls")[0]["member"] is False


async def test_chat_refusals(cli_user: MakeUser) -> None:
    alice = await cli_user()
    chat = Terminal(["chat", "999999"], alice.env())
    try:
        assert chat.wait_exit() == 4  # the view closes, the error is said
    finally:
        chat.kill()
    assert b"not in a conversation #999999" in chat.output
    no_terminal = alice.run("chat", "1")
    assert no_terminal.returncode == 2 and "needs a terminal" in no_terminal.stderr


async def test_chat_view_fits_80_columns_and_wraps_between_words(cli_user: MakeUser) -> None:
    alice, bob = await cli_user("Alice"), await cli_user("Bob")
    long_text = (
        "Le patient de la chambre douze a une tension à quatorze neuf ce matin et se plaint"
        " de douleurs abdominales depuis hier soir, merci de passer avant midi"
    )
    (created,) = alice.json("new", "--to", bob.login, "--subject", "Visite", long_text)
    chat = Terminal(["chat", str(created["conv"])], alice.env(), cols=80)
    try:
        chat.wait("[connected]")
        screen = chat.wait("avant midi")
        words = set(long_text.replace(",", "").split())
        lines = [line.strip() for line in screen.splitlines()]
        start = next(i for i, line in enumerate(lines) if "Alice Test: Le patient" in line)
        end = next(i for i, line in enumerate(lines) if line.endswith("avant midi"))
        assert end > start  # it did wrap
        for line in lines[start + 1 : end + 1]:  # every piece is whole words
            assert all(word.strip(",") in words for word in line.split()), line

        chat.type("/help\r")
        screen = chat.wait("PgUp/PgDn")
        for needle in ("/important TEXT", "/question TEXT", "/add LOGIN", "/rename NAME"):
            assert needle in screen
        for needle in ("/leave", "/history", "/quit, Ctrl-C", "//text", "'/text'"):
            assert needle in screen
        chat.type("/quit\r")
        assert chat.wait_exit() == 0
    finally:
        chat.kill()
