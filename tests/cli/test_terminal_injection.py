"""Terminal injection, chatd-cli's half: text stored before the server refused control and
bidirectional characters (the log cannot be rewritten) reaches ``history``, ``ls``, ``watch``
and the chat view shown, never obeyed.

The server now refuses such text, so the tests store it the way it was stored before: through
a second store on the server's database (as :class:`~tests.gateway.conftest.Admin` creates
users) with the character rules of ``chatd.core.text`` switched off in this process only.
The conversation is created by that store and the server never appends to it before reading
it, so the server's single-appender cache is not involved.  Every command runs in a
pseudo-terminal; its raw bytes are checked, as a terminal would receive them.
"""

from __future__ import annotations

import json

import pytest

from chatd.core import conversations
from chatd.core.conversations import CreateConversation, MessageBody, PostMessage
from chatd.core.ids import ConvId, UserId
from tests.cli.conftest import CliUser, MakeUser, Terminal
from tests.gateway.client import cmid
from tests.gateway.conftest import Admin

FORGED = "\r[99] 10:00 ! Dr X: ARRÊTEZ LE TRAITEMENT"
CLEAR_AND_TITLE = "\x1b[2J\x1b]0;Dr X\x07"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"
C1_CSI = "\x9b2J"
TEXT = f"Bonjour{FORGED}{CLEAR_AND_TITLE}{CLIPBOARD}{C1_CSI}"
NAME = "Suivi \u202eTNEITAP"
FIRST_NAME = "Dr\x1b[31m X\u2066"
# What a terminal must never receive from these: every escape, CR, C1 and bidi control.
NEVER = [b"\x1b[2J", b"\x1b]0;", b"\x1b]52;", b"\x1b[31m"]
NEVER += [text.encode() for text in ("\x9b", "\u202e", "\u2066")]


@pytest.fixture
def legacy_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules as they were before control and bidi characters were refused."""
    monkeypatch.setattr(conversations, "first_forbidden_in_text", lambda text: None)
    monkeypatch.setattr(conversations, "first_forbidden_in_name", lambda name: None)


async def hostile_conversation(admin: Admin, sender: int, reader: CliUser) -> int:
    result = await admin.store.apply(
        CreateConversation(
            UserId(sender), (reader.account.id,), NAME, cmid(), MessageBody(TEXT, None)
        )
    )
    return result.conv_id


def raw(terminal_output: bytes) -> bytes:
    """The bytes a program wrote: the pty turns each line feed into CR LF (onlcr)."""
    return terminal_output.replace(b"\r\n", b"\n")


def assert_harmless(output: bytes) -> None:
    written = raw(output)
    for sequence in NEVER:
        assert sequence not in written, (sequence, written)
    assert b"\r" not in written


def run_in_pty(user: CliUser, *args: str) -> Terminal:
    terminal = Terminal(list(args), user.env(), cols=200)
    try:
        assert terminal.wait_exit() == 0, terminal.text()
    finally:
        terminal.kill()
    return terminal


@pytest.mark.usefixtures("legacy_rules")
async def test_history_and_ls_show_stored_controls_escaped(
    admin: Admin, cli_user: MakeUser
) -> None:
    bob = await cli_user("Bob")
    sender = await admin.user(first_name=FIRST_NAME)
    conv = await hostile_conversation(admin, sender.id, bob)

    history = run_in_pty(bob, "history", str(conv))
    assert_harmless(history.output)
    assert b"\x1b" not in raw(history.output)  # one-shot commands write no escape at all
    text = raw(history.output).decode()
    assert "Dr^[[31m X<U+2066> Test: Bonjour^M[99] 10:00 ! Dr X: ARRÊTEZ" in text
    assert "^[[2J^[]0;Dr X^G^[]52;c;cm0gLXJmIH4K^G<U+009B>2J" in text
    assert "created « Suivi <U+202E>TNEITAP »" in text
    # No line starts with the forged "[99]": the CR was not obeyed.
    assert not any(line.startswith("[99]") for line in text.splitlines())

    listed = run_in_pty(bob, "ls")
    assert_harmless(listed.output)
    assert b"\x1b" not in raw(listed.output)
    assert f"#{conv:<6} Suivi <U+202E>TNEITAP" in raw(listed.output).decode()

    scripts = run_in_pty(bob, "history", str(conv), "--json")
    assert_harmless(scripts.output)
    events = [json.loads(line) for line in raw(scripts.output).decode().splitlines()]
    assert [e.get("text") for e in events] == [None, TEXT]  # the data itself is unchanged
    assert events[0]["name"] == NAME


@pytest.mark.usefixtures("legacy_rules")
async def test_watch_and_the_chat_view_show_stored_controls_escaped(
    admin: Admin, cli_user: MakeUser
) -> None:
    bob, carol = await cli_user("Bob"), await cli_user("Carol")
    sender = await admin.user(first_name=FIRST_NAME)
    conv = await hostile_conversation(admin, sender.id, bob)
    await admin.store.apply(
        conversations.AddMember(ConvId(conv), UserId(sender.id), UserId(carol.account.id), cmid())
    )

    watch = Terminal(["watch"], bob.env(), cols=200)
    chat = Terminal(["chat", str(conv)], bob.env(), cols=120)
    try:
        watch.wait("Watching")
        # Stored behind the server's back, so no push announces it: Carol's message, sent
        # through the server, is the next seq, and the gap makes watch catch up from its
        # cursor, the hostile message first.
        await admin.store.apply(
            PostMessage(ConvId(conv), UserId(sender.id), MessageBody(FORGED + CLIPBOARD), cmid())
        )
        carol.ok("send", str(conv), "Reçu")
        screen = watch.wait("Carol Test: Reçu")
        assert "Dr^[[31m X<U+2066> Test: ^M[99] 10:00 ! Dr X: ARRÊTEZ" in screen
        assert_harmless(watch.output)
        assert b"\x1b" not in raw(watch.output)

        screen = chat.wait("[connected]")
        screen = chat.wait("Carol Test: Reçu")
        assert "« Suivi <U+202E>TNEITAP »" in screen
        assert "Bonjour^M[99] 10:00 ! Dr X:" in screen.replace("\n", "")
        assert "^[]52;c;cm0gLXJmIH4K^G" in screen.replace("\n", "")
        # prompt_toolkit draws with escape sequences of its own; none of the stored ones.
        for sequence in NEVER:
            assert sequence not in raw(chat.output), sequence
        chat.type("/quit\r")
        assert chat.wait_exit() == 0
    finally:
        watch.kill()
        chat.kill()
