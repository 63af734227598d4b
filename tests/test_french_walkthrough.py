"""A French user, from ``chatd user add`` to ``chatd-cli chat``, reads French everywhere.

The walk-through of the README, in a French terminal (``LANG=fr_FR.UTF-8``), through real
processes: the admin command creates two accounts, one person logs in through a terminal and
answers the terms prompt with ``o``, the other logs in from a script; they start a
conversation, send, list, read the history, and one opens the chat view and asks for /help.

What is checked is what a person reads: no English sentence of either catalogue appears
anywhere in what the programs wrote (standard output, error output, the terminal's screen),
and the French sentences do.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.cli.conftest import CLI, Terminal, cli_env
from tests.conftest import chatd_env
from tests.gateway.conftest import ServerProcess, start_server, stop_server
from tools.catalogues import DOMAINS

PASSWORD_CLAIRE = "Ruisseau-Grasse-Marin-2026"
PASSWORD_PAUL = "Cabinet du Port, salle 4"
FRENCH = {"LANG": "fr_FR.UTF-8"}


def translated_pairs() -> list[tuple[str, str]]:
    """(English, French) of every sentence of both catalogues worth looking for: at least
    three words before any field, and a French text that differs."""
    pairs = []
    for domain in DOMAINS:
        with domain.po_path("fr").open("rb") as src:
            catalog = read_po(src, locale="fr")
        for message in catalog:
            if not message.id or isinstance(message.id, tuple):
                continue
            english = re.split(r"[{%]", message.id)[0].strip()
            french = re.split(r"[{%]", str(message.string))[0].strip()
            if len(english.split()) >= 3 and english != french:
                pairs.append((english, french))
    return pairs


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(tmp_path, {})  # the server's default: French
    yield process
    stop_server(process)


def run(argv: list[str], env: dict[str, str], stdin: str) -> str:
    """A real process in a French terminal; what it wrote (it must succeed)."""
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env={**{k: v for k, v in env.items() if not k.startswith("LC_")}, **FRENCH},
        timeout=60,
        check=False,
        start_new_session=True,
    )
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.stdout + done.stderr


def admin(server: ServerProcess, *args: str, stdin: str = "") -> str:
    return run([str(CLI.with_name("chatd")), *args], chatd_env(server.data_dir), stdin)


def cli(config: Path, server: ServerProcess, *args: str, stdin: str = "") -> str:
    return run([str(CLI), *args], cli_env(config, server.base_url), stdin)


def test_a_french_user_reads_french_everywhere(server: ServerProcess, tmp_path: Path) -> None:
    said: list[str] = []
    said.append(admin(server, "--help"))
    said.append(
        admin(
            server,
            *("user", "add", "c.dupont", "--first-name", "Claire", "--last-name", "Dupont"),
            *("--profession", "Infirmière", "--structure", "CH de Grasse"),
            stdin=PASSWORD_CLAIRE + "\n",
        )
    )
    said.append(
        admin(
            server,
            *("user", "add", "p.martin", "--first-name", "Paul", "--last-name", "Martin"),
            stdin=PASSWORD_PAUL + "\n",
        )
    )
    said.append(admin(server, "user", "list"))

    claire, paul = tmp_path / "claire", tmp_path / "paul"
    login = Terminal(["login", "c.dupont"], {**cli_env(claire, server.base_url), **FRENCH})
    try:
        login.wait(":")  # the password prompt, whatever its words
        login.type(PASSWORD_CLAIRE + "\r")
        screen = login.wait("[o/N]")  # the terms prompt takes o for oui
        login.type("o\r")
        assert login.wait_exit() == 0
        said.append(login.text())
    finally:
        login.kill()
    assert PASSWORD_CLAIRE.encode() not in login.output
    said.append(screen)
    said.append(
        cli(
            paul,
            server,
            "login",
            "p.martin",
            "--password-stdin",
            "--accept-terms",
            stdin=PASSWORD_PAUL + "\n",
        )
    )

    said.append(cli(claire, server, "whoami"))
    said.append(
        cli(
            claire,
            server,
            "new",
            "--to",
            "p.martin",
            "--subject",
            "Suivi Mme D.",
            "Pouvez-vous passer demain ?",
            "--question",
        )
    )
    said.append(cli(paul, server, "ls"))
    said.append(cli(paul, server, "send", "1", "Oui, vers 14 h."))
    said.append(cli(claire, server, "history", "1"))
    said.append(cli(claire, server, "outbox"))

    chat = Terminal(["chat", "1"], {**cli_env(paul, server.base_url), **FRENCH}, cols=80)
    try:
        chat.wait("Oui, vers 14 h.")
        chat.type("Je confirme\r")
        chat.wait("Je confirme")
        said.append(chat.text())
        chat.type("/help\r")
        chat.wait("PgUp")
        said.append(chat.text())
        chat.type("/quit\r")
        assert chat.wait_exit() == 0
    finally:
        chat.kill()

    everything = "\n".join(said)
    flat = " ".join(everything.split())  # screens wrap lines; sentences are compared flat
    pairs = translated_pairs()
    english = sorted({en for en, _ in pairs if en in flat})
    assert not english, f"English sentences shown to a French user: {english}\n{everything}"
    french = sorted({fr for _, fr in pairs if fr in flat})
    assert len(french) >= 10, f"only these French sentences were seen: {french}\n{everything}"
    assert re.search(r"\b\d{2}/\d{2}/\d{4} \d{2}:\d{2}\b", flat), everything  # French dates
