"""Reliability against a real server that is frozen, killed (SIGKILL) and restarted on the
same data dir and port: reconnect with backoff, resume from the last seq held, and changes
that wait in the outbox and are delivered exactly once."""

from __future__ import annotations

import json
import signal
import stat
import time

from clients.cli.outbox import OutboxEntry, OutboxFile, encode
from tests.cli.conftest import TIMEOUT, CliUser, MakeUser, Restartable, Terminal
from tests.gateway.conftest import Admin


def outbox_of(user: CliUser) -> OutboxFile:
    (server_dir,) = (user.config_dir / "servers").iterdir()
    return OutboxFile(server_dir / f"outbox-{user.account.id}.json")


def wait_queued(user: CliUser, text: str) -> None:
    """Until a change with ``text`` is in the user's outbox file (it is written before it is
    first sent): polling a file another process writes, with a deadline."""
    deadline = time.monotonic() + TIMEOUT
    while not any(e.fields.get("text") == text for e in outbox_of(user).pending()):
        assert time.monotonic() < deadline, f"{text!r} never reached the outbox"
        time.sleep(0.05)


def messages(user: CliUser, conv: str, text: str) -> list[dict[str, object]]:
    return [e for e in user.json("history", conv) if e.get("text") == text]


async def test_send_pending_while_the_server_is_killed_is_delivered_once(
    cli_user: MakeUser, restartable: tuple[Restartable, Admin]
) -> None:
    server, admin = restartable
    alice, bob = await cli_user("Alice", on=admin), await cli_user("Bob", on=admin)
    (created,) = alice.json("new", "--to", bob.login, "--subject", "Garde", "Bonsoir")
    conv = str(created["conv"])
    bob_watch = bob.watch("--conv", conv)
    bob_watch.proc.send_signal(signal.SIGSTOP)  # it will resume only after the restart
    server.freeze()
    sending = alice.start("send", conv, "Pendant la panne", "--important")
    wait_queued(alice, "Pendant la panne")  # pending: in the outbox, waiting for an answer
    server.kill()
    server.restart()
    assert sending.proc.wait(TIMEOUT) == 0, (sending.stdout, sending.stderr)
    assert "Sent to #" in sending.stdout[0]
    assert outbox_of(alice).pending() == []

    # Bob's watch lost its connection with the old server: it reconnects and resumes from
    # the last seq it held, so it gets the message it missed — once.
    bob_watch.proc.send_signal(signal.SIGCONT)
    bob_watch.wait_stdout("Pendant la panne")
    alice.ok("send", conv, "Après la panne")
    bob_watch.wait_stdout("Après la panne")
    assert bob_watch.interrupt() == 0
    seqs = [p["seq"] for p in bob_watch.json_lines() if p["op"] == "event"]
    assert seqs == [3, 4]
    assert len(messages(bob, conv, "Pendant la panne")) == 1


async def test_outbox_survives_the_client_and_a_resend_is_idempotent(
    cli_user: MakeUser, restartable: tuple[Restartable, Admin]
) -> None:
    server, admin = restartable
    alice, bob = await cli_user("Alice", on=admin), await cli_user("Bob", on=admin)
    (created,) = alice.json("new", "--to", bob.login, "--subject", "Nuit")
    conv = str(created["conv"])

    # The server is down: the command gives up (network exit), the message stays queued.
    server.kill()
    result = alice.run("send", conv, "Hors ligne", "--timeout", "1")
    assert result.returncode == 5 and "queued" in result.stderr
    box = outbox_of(alice)
    assert stat.S_IMODE(box.path.stat().st_mode) == 0o600
    (entry,) = box.pending()
    # A client that crashed after the server stored its change but before the answer: the
    # same client_msg_id, already applied.
    applied = OutboxEntry.new("send", {"conv": int(conv), "text": "Déjà reçu"})
    box.path.write_text(encode([entry, applied]))
    server.restart()
    ws = await admin.connect(alice.account)
    await ws.send(int(conv), "Déjà reçu", client_msg_id=applied.client_msg_id)

    # The next command, whatever it is, delivers both, in order, and says so.
    listing = alice.run("ls")
    assert listing.returncode == 0, listing.stderr
    assert f"Outbox: message to #{conv} — delivered" in listing.stderr
    assert box.pending() == []
    assert len(messages(bob, conv, "Hors ligne")) == 1
    assert len(messages(bob, conv, "Déjà reçu")) == 1
    assert json.loads(bob.run("--json", "ls").stdout)["last_seq"] == 3


async def test_chat_shows_reconnecting_and_sends_what_was_typed_offline_once(
    cli_user: MakeUser, restartable: tuple[Restartable, Admin]
) -> None:
    server, admin = restartable
    alice, bob = await cli_user("Alice", on=admin), await cli_user("Bob", on=admin)
    (created,) = alice.json("new", "--to", bob.login, "--subject", "Relève", "Début")
    conv = str(created["conv"])
    chat = Terminal(["chat", conv], alice.env())
    try:
        chat.wait("[connected]")
        server.kill()
        chat.wait("[reconnecting…]")
        chat.type("Tapé hors ligne\r")
        chat.wait("Tapé hors ligne  (queued, offline)")
        server.restart()
        chat.wait("[connected]")
        chat.wait("  Alice Test: Tapé hors ligne")
        bob.ok("send", conv, "Reçu")
        chat.wait("Bob Test: Reçu")
        chat.type("/quit\r")
        assert chat.wait_exit() == 0
    finally:
        chat.kill()
    assert len(messages(bob, conv, "Tapé hors ligne")) == 1
