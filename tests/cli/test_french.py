"""chatd-cli in French — its first language — through real processes: a French terminal, or
an account whose language is French; and ``chatd-cli language`` switching an account between
French and English on every device.

The rest of the suite runs chatd-cli in an English terminal (``conftest.cli_env``).  French
typography: a no-break space (``N``) before ``:`` and inside « », a narrow one (``F``) before
``;``, ``?`` and ``!``.
"""

from __future__ import annotations

import datetime
import gettext
import json
import re
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chatd.argparse_words import speaking
from chatd.core.errors import ConversationNotFound
from chatd.i18n import number
from clients.cli import i18n, main
from clients.cli.attachments import human_size, label, type_name
from clients.cli.chat import HELP
from clients.cli.config import server_dir
from clients.cli.directory import Directory
from clients.cli.errors import server_error
from clients.cli.i18n import VOICE
from clients.cli.outbox import OutboxEntry, encode
from clients.cli.protocol import MAX_INT
from clients.cli.render import conversation_line, event_line, fmt_time
from tests.cli.conftest import (
    FRENCH,
    CliUser,
    MakeUser,
    Terminal,
    cli_env,
    run_cli,
)
from tests.gateway.conftest import PASSWORD, TERMS, TERMS_URL, Admin

N = "\u00a0"  # no-break space
F = "\u202f"  # narrow no-break space


def french(user: CliUser) -> CliUser:
    """The same user, in a French terminal from now on."""
    user.lang = FRENCH
    return user


def created_conv(result: subprocess.CompletedProcess[str], subject: str) -> str:
    """The conversation number of ``new``'s French sentence (which must match)."""
    said = re.fullmatch(
        rf"Conversation #(\d+) «{N}{re.escape(subject)}{N}» créée \(n°{N}\d+\)\.\n", result.stdout
    )
    assert said is not None, result.stdout
    return said.group(1)


def cached_language(user: CliUser) -> object:
    (path,) = user.config_dir.glob("servers/*/session.json")
    return json.loads(path.read_text())["user"].get("language", "absent")


# ----------------------------------------------------------------------------- real processes


async def test_a_french_login_reads_the_terms_in_french_and_accepts_them_with_o(
    admin: Admin, tmp_path: Path
) -> None:
    account = await admin.user(first_name="Claire", terms=False)
    env = cli_env(tmp_path / "config", admin.server.base_url, LANG=FRENCH)
    login = Terminal(["login", account.login], env)
    try:
        login.wait(f"Mot de passe{N}:")
        login.type(PASSWORD + "\r")
        screen = login.wait(
            f"Acceptez-vous les conditions d'utilisation, version {TERMS}{F}? [o/N]"
        )
        assert "vous devez accepter les conditions d'utilisation" in screen
        assert "(à lire sur" in screen
        login.type("o\r")
        screen = login.wait("Session ouverte pour Claire Test").replace("\n", "")
        # The session's end, with its date: the French way, in the terminal's time zone.
        assert re.search(rf"fin de session{N}: \d\d/\d\d/20\d\d \d\d:\d\d\.", screen), screen
        assert login.wait_exit() == 0
    finally:
        login.kill()
    assert PASSWORD.encode() not in login.output
    assert TERMS_URL.encode() in login.output.replace(b"\r\n", b"")

    listing = run_cli(env, "ls")
    assert listing.returncode == 0, listing.stderr
    assert f"Aucune conversation pour l'instant{N}: chatd-cli new --to IDENTIFIANT" in (
        listing.stderr
    )
    logout = run_cli(env, "logout")
    assert logout.stdout == f"Déconnexion de {admin.server.base_url} effectuée.\n"
    refused = run_cli(env, "login", account.login, "--password-stdin", stdin="pas le bon\n")
    assert refused.returncode == 3
    assert refused.stderr == f"chatd-cli{N}: Identifiant ou mot de passe incorrect.\n"


async def test_a_french_day_new_send_watch_history_read_and_leave(cli_user: MakeUser) -> None:
    alice, bob = french(await cli_user("Alice")), await cli_user("Bob")  # Bob: English
    conv = created_conv(
        alice.ok("new", "--to", bob.login, "--subject", "Visite", "Bonjour"), "Visite"
    )
    watch = alice.start("watch", "--conv", conv)
    watch.wait_stderr(
        f"Suivi de {alice.server_url} en tant que {alice.login} (Ctrl-C pour arrêter)."
    )

    assert bob.ok("send", conv, "Je passe à 14 h ?", "--question").stdout.startswith("Sent to #")
    line = watch.wait_stdout("Je passe")
    assert re.fullmatch(
        rf"#{conv} «{N}Visite{N}» \[3\] \d\d:\d\d \? Bob Test: Je passe à 14 h \?", line
    )
    assert f"1{N}non lu" in alice.ok("ls").stdout

    sent = alice.ok("send", conv, "Tension 14/9", "--important")
    assert sent.stdout == f"Message envoyé dans #{conv} (n°{N}4).\n"
    watch.wait_stdout("Tension 14/9")
    read = alice.ok("read", conv)
    assert read.stdout == f"Conversation #{conv} lue jusqu'au n°{N}4 (0{N}non lu).\n"
    state = watch.wait_stdout("lue jusqu'au")  # the read marker, as watch says it
    assert state == f"#{conv}{N}: lue jusqu'au n°{N}4 (0{N}non lu)."

    renamed = alice.ok("rename", conv, "Visite HAD")
    assert renamed.stdout == f"Conversation #{conv} renommée «{N}Visite HAD{N}» (n°{N}5).\n"
    watch.wait_stdout(f"Alice Test a renommé la conversation «{N}Visite HAD{N}»")
    history = alice.ok("history", conv).stdout.splitlines()
    assert history[0].endswith(f"* Alice Test a créé «{N}Visite{N}»")
    assert history[2].endswith("? Bob Test: Je passe à 14 h ?")
    assert history[3].endswith("! Alice Test: Tension 14/9")

    # A confirmation in French, answered in French: n keeps her in, o takes her out.
    question = f"Quitter la conversation #{conv}{F}? Vous n'en verrez plus les nouveaux messages."
    declined = alice.run("leave", conv, stdin="n\n")
    assert declined.returncode == 1
    assert f"{question} [o/N] " in declined.stderr
    assert declined.stderr.endswith(f"chatd-cli{N}: Vous restez dans la conversation.\n")
    left = alice.run("leave", conv, stdin="o\n")
    assert left.returncode == 0, left.stderr
    assert left.stdout == f"Vous avez quitté la conversation #{conv} (n°{N}6).\n"
    watch.wait_stdout("Alice Test a quitté la conversation")
    assert "Visite HAD (quittée)" in alice.ok("ls").stdout
    assert watch.interrupt() == 0
    assert "Traceback" not in "\n".join(watch.stderr)


async def test_dates_and_numbers_are_french_in_the_terminals_time_zone(
    cli_user: MakeUser,
) -> None:
    alice = french(await cli_user("Alice"))
    # A change queued on 2 January at 9:05 in Nouméa (the outbox shows when it was queued).
    queued = datetime.datetime(2026, 1, 2, 9, 5, tzinfo=ZoneInfo("Pacific/Noumea"))
    fields = {"conv": 7, "text": "Compte rendu"}
    entry = OutboxEntry("c" * 32, "send", fields, int(queued.timestamp() * 1000))
    box = alice.config_dir / "servers" / server_dir(alice.server_url).name
    (box / f"outbox-{alice.account.id}.json").write_text(encode([entry]))
    noumea = alice.run("outbox", TZ="Pacific/Noumea")
    assert noumea.stdout == f"02/01/2026 09:05 message pour #7{N}: Compte rendu\n"
    paris = alice.run("outbox", TZ="Europe/Paris")  # the same moment, the terminal's zone
    assert paris.stdout == f"01/01/2026 23:05 message pour #7{N}: Compte rendu\n"
    english = alice.run("outbox", TZ="Europe/Paris", LANG="en_GB.UTF-8")
    assert english.stdout == "01/01/2026, 23:05 message to #7: Compte rendu\n"

    # A number in a sentence is grouped as French writes it.
    bad = alice.run("read", "7", "--seq", "-1")
    assert bad.returncode == 2
    assert f"doit être compris entre 0 et {number(MAX_INT, 'fr')}" in bad.stderr
    assert f"{F}007{F}199{F}" in number(MAX_INT, "fr")


async def test_the_servers_sentences_come_in_the_clients_language(cli_user: MakeUser) -> None:
    alice, bob = french(await cli_user("Alice")), await cli_user("Bob")
    conv = created_conv(alice.ok("new", "--to", bob.login, "--subject", "Longs"), "Longs")
    too_long = "x" * 20_001
    answers = {}
    for lang in (FRENCH, "en_GB.UTF-8"):
        refused = alice.run("--json", "send", conv, "-", stdin=too_long, LANG=lang)
        assert refused.returncode == 1, refused.stderr
        answers[lang] = json.loads(refused.stderr)
    fr, en = answers[FRENCH], answers["en_GB.UTF-8"]
    assert fr["error"] == en["error"] == "invalid_request"
    assert fr["message"] != en["message"]  # the server wrote each in the language asked
    assert number(20_000, "fr") in fr["message"] and "20,000" in en["message"]
    assert alice.json("outbox") == []

    missing = alice.run("history", "999999")
    assert missing.returncode == 4
    french_sentence = ConversationNotFound().message_in("fr")
    assert french_sentence != ConversationNotFound().message_in("en")
    assert missing.stderr == f"chatd-cli{N}: {french_sentence}\n"


async def test_chatd_cli_language_switches_the_account_on_every_device(
    cli_user: MakeUser, admin: Admin, tmp_path: Path
) -> None:
    alice, bob = french(await cli_user("Alice")), await cli_user("Bob")
    conv = created_conv(alice.ok("new", "--to", bob.login, "--subject", "Langues"), "Langues")
    assert alice.ok("language").stdout == (
        f"Langue{N}: français, celle de votre terminal (aucune n'est choisie pour votre"
        f" compte{N}: chatd-cli language fr ou en en choisit une).\n"
    )
    switched = alice.ok("language", "en")
    assert switched.stdout == (
        "Your account's language is now English: chatd-cli and the server speak it on all"
        " your devices.\n"
    )
    assert cached_language(alice) == "en"

    # The next command speaks English in this French terminal — argparse, chatd-cli and the
    # server alike.
    assert alice.ok("send", conv, "Hello").stdout.startswith(f"Sent to #{conv} (seq ")
    assert alice.ok("--help").stdout.startswith("usage: chatd-cli")
    missing = alice.run("history", "999999")
    assert missing.stderr == f"chatd-cli: {ConversationNotFound().message_in('en')}\n"
    (shown,) = alice.json("language")
    assert shown == {"server": alice.server_url, "language": "en", "speaking": "en"}
    assert alice.ok("language").stdout == "Language: English, chosen for your account.\n"

    # Another device, French terminal, nothing cached: the login answer says English.
    phone = CliUser(alice.account, tmp_path / "phone", alice.server_url, lang=FRENCH)
    logged = phone.run("login", alice.login, "--password-stdin", stdin=PASSWORD + "\n")
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout.startswith("Logged in as Alice Test")
    assert cached_language(phone) == "en"

    # Chosen back on the phone: this device learns it from the next hello, and says it at once.
    assert phone.ok("language", "fr").stdout.startswith(f"Langue de votre compte{N}: français.")
    assert alice.ok("send", conv, "Re-bonjour").stdout.startswith("Message envoyé dans #")
    assert cached_language(alice) == "fr"
    english_terminal = alice.ok("send", conv, "Encore", LANG="en_GB.UTF-8")
    assert english_terminal.stdout.startswith("Message envoyé")  # the account's, not the LANG

    # auto: the account follows each terminal again.
    auto = alice.ok("language", "auto")
    assert auto.stdout == (
        f"Votre compte n'a plus de langue attitrée{N}: chatd-cli suit celle de votre terminal"
        f" (ici{N}: français).\n"
    )
    assert cached_language(alice) is None
    assert alice.ok("send", conv, "Bye", LANG="en_GB.UTF-8").stdout.startswith("Sent to #")
    refused = alice.run("language", "de")
    assert refused.returncode == 2
    assert f"choix invalide{N}: 'de' (choisir parmi 'fr', 'en', 'auto')" in refused.stderr


async def test_the_chat_view_in_french_fits_80_columns(cli_user: MakeUser) -> None:
    alice, bob = french(await cli_user("Alice")), await cli_user("Bob")
    conv = created_conv(
        alice.ok("new", "--to", bob.login, "--subject", "Visite", "Bonjour"), "Visite"
    )
    chat = Terminal(["chat", conv], alice.env(), cols=80)
    # prompt_toolkit draws a no-break space as a space (a narrow one as it is).
    sp = " "
    try:
        screen = chat.wait("[connecté]")
        assert f"#{conv} «{sp}Visite{sp}»" in screen
        assert f"Participants{sp}: Alice Test (CH Test), Bob Test (CH Test)" in screen
        assert "Tapez un message puis Entrée. /help liste les commandes." in screen
        assert "Alice Test: Bonjour" in screen

        chat.type("/help\r")
        screen = chat.wait("PgUp/PgDn")
        table = gettext.translation("chatd_cli", i18n.LOCALE_DIR, ["fr"]).gettext(HELP)
        assert table != HELP
        table = table.replace(N, sp)
        shown = [line.strip() for line in screen.splitlines()]
        for line in table.splitlines():  # each line whole on one line of the screen
            assert line.strip() in shown, line
        assert "/add IDENTIFIANT" in screen and f"envoie «{sp}/texte{sp}»" in screen

        chat.type("/nope\r")
        chat.wait(f"Commande inconnue /nope{sp}: /help liste les commandes.")
        bob.ok("send", conv, "Reçu", "--important")
        chat.wait("! Bob Test: Reçu")
        chat.type("/leave\r")
        chat.wait("Tapez de nouveau /leave pour quitter la conversation")
        chat.type("/leave\r")
        chat.wait(f"(vous l'avez quittée{sp}: lecture seule)")
        chat.wait("Alice Test a quitté la conversation")
        chat.type("/quit\r")
        assert chat.wait_exit() == 0
    finally:
        chat.kill()


async def test_help_and_usage_errors_are_french_first(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"
    for lang in (FRENCH, "C.UTF-8", ""):  # a French terminal, or one that names no language
        env = cli_env(tmp_path, url, LANG=lang)
        shown = run_cli(env, "--help")
        assert shown.returncode == 0
        assert shown.stdout.startswith(f"utilisation{N}: chatd-cli"), shown.stdout
        assert f"\noptions{N}:\n" in shown.stdout
        assert "afficher ce message d'aide et quitter" in shown.stdout
        assert "COMMANDE" in shown.stdout and "language" in shown.stdout
    env = cli_env(tmp_path, url, LANG=FRENCH)
    send_help = run_cli(env, "send", "--help").stdout
    assert f"arguments positionnels{N}:" in send_help and "CONV [TEXTE]" in send_help
    bad = run_cli(env, "send", "abc")
    assert bad.returncode == 2
    assert (
        f"chatd-cli send{N}: erreur{N}: argument CONV{N}: numéro de conversation invalide{N}: 'abc'"
    ) in bad.stderr
    required = run_cli(env, "new", "--subject", "x")
    assert f"les arguments suivants sont obligatoires{N}: --to" in required.stderr
    english = run_cli(cli_env(tmp_path, url), "--help")
    assert english.stdout.startswith("usage: chatd-cli")
    assert "show this help message and exit" in english.stdout


# ----------------------------------------------------------------------------- in process


def test_french_words_sizes_and_dates() -> None:
    VOICE.use("fr")  # the english fixture puts English back
    pdf = {"id": "1", "name": "cr.pdf", "mime": "application/pdf", "size": 1_234_567}
    assert label(pdf) == f"[pièce jointe{N}: cr.pdf — PDF, 1,2{N}Mo]"
    assert (human_size(0), human_size(1), human_size(532)) == (
        f"0{N}octet",
        f"1{N}octet",
        f"532{N}octets",
    )
    assert human_size(48_213) == f"48,2{N}ko" and type_name("image/jpeg") == "image JPEG"
    noon = datetime.datetime(2026, 1, 2, 12, 30)
    ts = int(noon.timestamp() * 1000)
    assert fmt_time(ts, today=noon.date()) == "12:30"
    assert fmt_time(ts, today=datetime.date(2026, 1, 3)) == "02/01/2026 12:30"

    who = Directory({"id": 1, "first_name": "Claire", "last_name": "Dupont"})
    created = {"conv": 8, "seq": 1, "kind": "created", "sender": 1, "ts": None, "name": "Suivi"}
    assert event_line(created, who) == f"[1] --:-- * Claire Dupont a créé «{N}Suivi{N}»"
    left = {**created, "seq": 3, "kind": "left", "user": 1}
    line = conversation_line(
        {"conv": 8, "name": "Suivi", "member": False, "unread": 2, "last": left}, who
    )
    assert line.startswith("#8      Suivi (quittée)") and f"2{N}non lus" in line
    assert line.endswith("* Claire Dupont a quitté la conversation")
    expired = server_error("token_expired", "x")
    assert expired.message == (
        f"Votre session a expiré{F}; veuillez vous reconnecter{N}: chatd-cli login"
    )


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_help_table_fits_80_columns(lang: str) -> None:
    VOICE.use(lang)  # type: ignore[arg-type]
    table = i18n._(HELP)
    assert len(table.splitlines()) == 5
    # The status line shows it one column in, within 80 columns less one.
    assert all(len(line) <= 78 for line in table.splitlines()), table


def test_the_language_is_the_accounts_else_the_terminals_else_french(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    assert i18n.choose(None) == "fr"
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    assert (i18n.choose(None), i18n.choose("fr"), i18n.choose("de")) == ("en", "fr", "en")
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")  # LC_ALL first, as POSIX says
    assert i18n.choose(None) == "fr"
    monkeypatch.setenv("LC_ALL", "C.UTF-8")  # set, but no language chatd speaks: French
    assert i18n.choose(None) == "fr"

    # main reads the account's language from the session cached for the command's server,
    # before the parser exists, and argparse speaks it while main parses.
    monkeypatch.setenv("CHATD_CLI_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("LC_ALL", "en_GB.UTF-8")
    url = "http://chat.example.org:8470"
    session = Path(server_dir(url)) / "session.json"
    session.parent.mkdir(parents=True)
    user = {"id": 4, "login": "c.dupont", "language": "fr"}
    session.write_text(json.dumps({"token": "t", "expires_at": 0, "user": user}))
    main.choose_language(["--server", url, "ls"])
    assert VOICE.lang == "fr"
    with speaking(VOICE):
        assert "utilisation" in main.build_parser().format_usage()
    assert "usage:" in main.build_parser().format_usage()  # argparse left as it was
    main.choose_language(["ls", "--server=http://elsewhere:1"])  # nothing cached there
    assert VOICE.lang == "en"
    main.choose_language(["--server", "ftp://not-a-server", "ls"])  # never fails
    assert VOICE.lang == "en"
