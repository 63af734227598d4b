"""The ``chatd`` admin command speaks the terminal's language: French first, English on request.

Its language: ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` (the first one set), if chatd speaks it;
else ``CHATD_DEFAULT_LANGUAGE``; else French.  Run as real subprocesses (and in a
pseudo-terminal for the password prompt); the other admin tests pin an English terminal.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pexpect
import pytest

from chatd.admin_voice import admin_language
from chatd.core.password_policy import rule
from tests.conftest import chatd_env, run_chatd

FRENCH = {"LANG": "fr_FR.UTF-8"}
NBSP = "\u00a0"


def spaced(text: str) -> str:
    """Whitespace-insensitive (argparse re-wraps help texts), no-break spaces kept."""
    return " ".join(text.replace(NBSP, "\x00").split()).replace("\x00", NBSP)


def french_ok(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    result = run_chatd(data_dir, *args, stdin=stdin, env=FRENCH)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    assert french_ok(path, "init").splitlines() == [
        f"Fichier de clés {path / 'master.keys'} créé (mode 0600)."
        f" Sauvegardez-le{NBSP}: sans lui, plus rien ne s'ouvre.",
        f"La base de données {path / 'chatd.sqlite3'} est prête.",
    ]
    return path


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({"LC_ALL": "en_US.UTF-8", "LANG": "fr_FR.UTF-8"}, "en"),  # LC_ALL first
        ({"LC_MESSAGES": "fr_CA.UTF-8", "LANG": "en_GB.UTF-8"}, "fr"),
        ({}, "fr"),
        ({"LANG": "C.UTF-8"}, "fr"),  # not a language chatd speaks: the default
        ({"LANG": "C.UTF-8", "CHATD_DEFAULT_LANGUAGE": "en"}, "en"),
        ({"CHATD_DEFAULT_LANGUAGE": "en"}, "en"),
        ({"LANG": "fr_FR.UTF-8", "CHATD_DEFAULT_LANGUAGE": "en"}, "fr"),  # the terminal first
        ({"LANG": "de_DE.UTF-8", "CHATD_DEFAULT_LANGUAGE": "nl"}, "fr"),
    ],
)
def test_the_admin_language_rule(environ: dict[str, str], expected: str) -> None:
    assert admin_language(environ) == expected


def test_help_in_french(tmp_path: Path) -> None:
    result = run_chatd(tmp_path, "--help", env=FRENCH)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"utilisation{NBSP}: chatd [-h] COMMANDE ..."
    assert f"arguments positionnels{NBSP}:" in lines
    assert f"options{NBSP}:" in lines
    # argparse pads the column to the longest command name ("checkpoints").
    assert any(
        re.fullmatch(r"  -h, --help +afficher cette aide et quitter", line) for line in lines
    )
    text = spaced(result.stdout)
    assert (
        "chatd, serveur de messagerie sécurisée. Les réglages viennent des variables CHATD_*"
        f" (voir «{NBSP}chatd settings{NBSP}»)." in text
    )
    assert "user Comptes utilisateurs." in text
    assert "usage" not in result.stdout and "options:" not in result.stdout


def test_user_add_help_states_the_rule_and_the_language_option_in_french(tmp_path: Path) -> None:
    result = run_chatd(tmp_path, "user", "add", "--help", env=FRENCH)
    assert result.returncode == 0, result.stderr
    text = spaced(result.stdout)
    assert spaced(rule("fr")) in text
    assert "--first-name PRÉNOM Prénom." in text
    assert "--language {fr,en} La langue du compte (fr ou en)." in text


def test_argparse_errors_in_french(tmp_path: Path) -> None:
    missing = run_chatd(tmp_path, "user", "add", env=FRENCH)
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1] == (
        f"chatd user add{NBSP}: erreur{NBSP}: les arguments suivants sont obligatoires{NBSP}:"
        " IDENTIFIANT, --first-name, --last-name"
    )
    language = run_chatd(
        tmp_path, "user", "add", "x", "--first-name", "A", "--last-name", "B",
        "--language", "de", env=FRENCH,
    )  # fmt: skip
    assert language.returncode == 2
    assert language.stderr.splitlines()[-1] == (
        f"chatd user add{NBSP}: erreur{NBSP}: argument --language{NBSP}: choix non valide"
        f"{NBSP}: 'de' (choisissez parmi 'fr', 'en')"
    )


def test_user_add_prompts_and_states_the_rule_in_french(data_dir: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatd", "user", "add", "c.dupont", "--first-name", "Claire",
         "--last-name", "Dupont", "--language", "fr"],
        env=chatd_env(data_dir, FRENCH),
        encoding="utf-8",
        timeout=30,
        dimensions=(24, 300),
    )  # fmt: skip
    try:
        assert child.expect_exact([f"Mot de passe{NBSP}:", pexpect.EOF]) == 0
        assert spaced(rule("fr")) in spaced(child.before)  # said before the first prompt
        child.sendline("azertyuiop123")
        child.expect_exact(
            "C'est l'un des mots de passe les plus courants (ou une simple variante)"
        )
        child.expect_exact(f"Mot de passe{NBSP}:")
        child.sendline("Trois patients à 14h")
        child.expect_exact(f"Confirmez le mot de passe{NBSP}:")
        child.sendline("Trois patients à 15h")
        child.expect_exact("Les mots de passe sont différents.")
        child.expect_exact(f"Mot de passe{NBSP}:")
        child.sendline("Trois patients à 14h")
        child.expect_exact(f"Confirmez le mot de passe{NBSP}:")
        child.sendline("Trois patients à 14h")
        child.expect_exact("Utilisateur 1 (c.dupont) créé.")
        child.expect_exact(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_user_add_refusal_list_and_disable_in_french(data_dir: Path) -> None:
    weak = run_chatd(
        data_dir, "user", "add", "p.martin", "--first-name", "Paul", "--last-name", "Martin",
        stdin="court\n", env=FRENCH,
    )  # fmt: skip
    assert weak.returncode == 2
    assert weak.stderr == (
        f"chatd{NBSP}: Un mot de passe compte au moins 12 caractères{NBSP}; celui-ci en compte 5.\n"
    )
    french_ok(
        data_dir, "user", "add", "p.martin", "--first-name", "Paul", "--last-name", "Martin",
        "--profession", "Infirmier", "--language", "en", stdin="un mot de passe solide\n",
    )  # fmt: skip
    assert french_ok(data_dir, "user", "disable", "p.martin") == "Utilisateur p.martin désactivé.\n"
    (line,) = french_ok(data_dir, "user", "list").splitlines()
    assert line.split() == ["1", "p.martin", "en", "Paul", "Martin,", "Infirmier", "[désactivé]"]
    assert french_ok(data_dir, "user", "enable", "p.martin") == "Utilisateur p.martin réactivé.\n"


def test_an_unknown_user_is_said_in_french_or_in_the_default_language(data_dir: Path) -> None:
    unknown = run_chatd(data_dir, "user", "disable", "nobody", env=FRENCH)
    assert (unknown.returncode, unknown.stderr) == (1, f"Aucun utilisateur «{NBSP}nobody{NBSP}».\n")
    # No terminal language: CHATD_DEFAULT_LANGUAGE decides.
    english = run_chatd(
        data_dir, "user", "disable", "nobody", env={"LANG": "", "CHATD_DEFAULT_LANGUAGE": "en"}
    )
    assert (english.returncode, english.stderr) == (1, "No user 'nobody'.\n")
    default = run_chatd(data_dir, "user", "disable", "nobody", env={"LANG": ""})
    assert default.stderr == unknown.stderr  # and French without either


def test_settings_in_french(tmp_path: Path) -> None:
    rows = {line.split()[0]: line for line in french_ok(tmp_path, "settings").splitlines() if line}
    assert rows["CHATD_DATA_DIR"].split(None, 2)[2] == (
        "Répertoire de la base de données et du fichier de clés."
    )
    assert rows["CHATD_DEFAULT_LANGUAGE"].split(None, 2)[1:] == [
        "fr",
        "Langue des utilisateurs qui n'en ont choisi aucune et dont l'application n'en"
        " demande aucune (fr ou en).",
    ]


def test_configuration_and_verify_in_french(data_dir: Path) -> None:
    bad = run_chatd(data_dir, "verify", env={**FRENCH, "CHATD_PORT": "x"})
    assert (bad.returncode, bad.stderr) == (
        2,
        f"chatd{NBSP}: Configuration non valide{NBSP}: CHATD_PORT{NBSP}: nombre entier attendu,"
        " et non 'x'.\n",
    )
    assert french_ok(data_dir, "verify") == (
        f"0 conversation, 0 événement, 0 pièce jointe vérifiés{NBSP}: OK\n"
    )
    assert french_ok(data_dir, "retention", "run", "--dry-run") == (
        "Aucune conversation n'a dépassé la durée de conservation.\n"
    )
