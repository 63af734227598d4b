"""The password rule (chatd.core.password_policy): pure unit tests and properties."""

from __future__ import annotations

import gettext
import importlib.resources
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.errors import WeakPasswordError
from chatd.core.password_policy import (
    COMMON_FILE,
    MIN_CHARS,
    MIN_DISTINCT,
    REASONS,
    check_password,
    common_passwords,
    fold,
    one_time_password,
    rule,
)
from clients.cli import passwd as cli_passwd

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "c.dupont"
NAMES = ("Élodie", "Le Gall-Nguyễn")


def reason(password: str, **context: object) -> str:
    with pytest.raises(WeakPasswordError) as refused:
        check_password(password, **context)  # type: ignore[arg-type]
    error = refused.value
    assert error.code == "weak_password"
    key = error.details["reason"]
    assert key in REASONS
    for said in (error.message, error.message_in("fr"), error.message_in("en")):
        assert said.endswith(".") and "{" not in said  # a finished sentence
    assert error.message_in("fr") != error.message_in("en")  # translated
    return str(key)


def test_the_rule_is_one_sentence_shared_by_server_and_terminal_client() -> None:
    english = rule("en")
    assert f"at least {MIN_CHARS} characters" in english
    assert f"{MIN_DISTINCT} of them different" in english
    assert rule("fr").startswith(f"Un mot de passe compte au moins {MIN_CHARS} caractères")
    # The client says the server's rule before the prompt, in English and in French.
    assert english == cli_passwd.RULE
    client_fr = gettext.translation("chatd_cli", ROOT / "clients/cli/locale", ["fr"])
    assert " ".join(client_fr.gettext(cli_passwd.RULE).split()) == " ".join(rule("fr").split())


def test_the_refusals_are_said_in_french_with_french_numbers() -> None:
    with pytest.raises(WeakPasswordError) as refused:
        check_password("short")
    assert refused.value.message_in("fr") == (
        "Un mot de passe compte au moins 12 caractères\u00a0; celui-ci en compte 5."
    )
    assert refused.value.message_in("en") == (
        "A password has at least 12 characters; this one has 5."
    )


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("", "too_short"),
        ("elevenchars", "too_short"),
        ("é" * 600, "too_long"),  # 1200 bytes: more than a login accepts
        ("c.dupont-au-travail", "login"),
        ("C.DUPONT au travail", "login"),  # case-insensitive
        ("mon cdupont favori", "login"),  # the login without its punctuation
        ("elodie est en garde", "name"),  # accents ignored
        ("chez les LE GALL toujours", "name"),
        ("ma tante nguyen dit bonjour", "name"),  # one part of a compound name
        ("gall-nguyen x", "name"),
        ("motdepasse123", "common"),
        ("MotDePasse123", "common"),
        ("Azertyuiop!!", "common"),
        ("P@ssw0rd1234", "common"),  # letter-for-digit swaps undone
        ("motdepasse2024!!", "common"),  # trailing symbols undone
        ("123456789012", "common"),
        ("correct horse battery staple", "common"),
        ("abcdefghijklmno", "sequence"),
        ("azertyuiopqsdfgh", "sequence"),
        ("nbvcxwmlkjhgfdsq", "sequence"),  # backwards
        ("345678901234567", "sequence"),  # digits, round the end
        ("hjklhjklhjklhj", "distinct"),
        ("abababababab12", "distinct"),
        ("Zz" * 10 + "!", "distinct"),  # case folded: z and !
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, expected: str) -> None:
    assert reason(password, login=LOGIN, names=NAMES) == expected


def test_the_sentences_say_why() -> None:
    with pytest.raises(WeakPasswordError, match="at least 12 characters; this one has 5"):
        check_password("short")
    with pytest.raises(WeakPasswordError, match="must not contain your login"):
        check_password("xx-c.dupont-xx", login=LOGIN)
    with pytest.raises(WeakPasswordError, match="first or last name"):
        check_password("élodie et moi toujours", names=NAMES)
    with pytest.raises(WeakPasswordError, match="most common passwords"):
        check_password("Motdepasse123!")
    with pytest.raises(WeakPasswordError, match="at least 6 different characters; this one"):
        check_password("abcabcabcabcabc")


def test_the_new_password_must_differ_from_the_current_one() -> None:
    good = "un cheval vert mange du foin"
    assert reason(good, current=good) == "same"
    check_password(good, current="another pass phrase entirely")


@pytest.mark.parametrize(
    "password",
    [
        "un cheval vert mange du foin",
        "S3cret pass phrase",
        "Tension 14/9 ce matin !",
        "Lyon-Part-Dieu_quai7",
        "ÉtéIndien à Grasse 2026",
        "k7pm-4xq2-hb9t-w3nd",
    ],
)
def test_reasonable_passwords_pass(password: str) -> None:
    check_password(password, login=LOGIN, names=NAMES)


def test_short_names_are_not_hunted_inside_words() -> None:
    check_password("hello lighthouse keeper", names=("Li", "Ng"))  # two letters: not checked
    assert reason("hello lighthouse keeper", names=("Lig", "Ng")) == "name"


def test_the_packaged_list_is_large_folded_and_of_long_entries() -> None:
    text = importlib.resources.files("chatd.core").joinpath(COMMON_FILE).read_text("utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    assert len(lines) >= 300
    assert all(len(line) >= MIN_CHARS for line in lines)  # shorter ones fail on length anyway
    assert len(set(lines)) == len(lines)
    entries, _ = common_passwords()
    assert len(entries) == len(lines)
    for french in ("azertyuiop123", "motdepasse123", "123456789012", "1qaz2wsx3edc"):
        assert french in entries
    assert all(fold(e) == e for e in entries)


def test_the_list_is_package_data_and_read_only_when_needed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert COMMON_FILE in config["tool"]["setuptools"]["package-data"]["chatd.core"]
    probe = (
        "import chatd.core.password_policy as p; a = p.common_passwords.cache_info().currsize;"
        " p.check_password('un cheval vert mange du foin');"
        " print(a, p.common_passwords.cache_info().currsize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["0", "1"]  # nothing read at import; read once when used


def test_one_time_passwords_are_readable_long_and_random() -> None:
    made = {one_time_password() for _ in range(200)}
    assert len(made) == 200
    for password in made:
        assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password), password
        assert not set(password) & set("01ilo")  # no look-alikes
        assert len(password.replace("-", "")) >= 16
    for password in list(made)[:20]:
        check_password(password)  # it would pass the rule too


# ----------------------------------------------------------------------------- properties

LOGIN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-@éèçà"
logins = st.text(LOGIN_CHARS, min_size=2, max_size=64).filter(lambda s: s.strip() == s)
texts = st.text(max_size=40)


def _any_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@st.composite
def containing_login(draw: st.DrawFn) -> tuple[str, str]:
    login = draw(logins)
    return login, draw(texts) + _any_case(draw, login) + draw(texts)


@settings(max_examples=300)
@given(containing_login())
def test_a_password_containing_the_login_is_always_refused(case: tuple[str, str]) -> None:
    login, password = case
    with pytest.raises(WeakPasswordError):
        check_password(password, login=login)


@settings(max_examples=300)
@given(st.text(min_size=0, max_size=40), logins, st.lists(st.text(max_size=12), max_size=2))
def test_an_accepted_password_has_at_least_12_characters(
    password: str, login: str, names: list[str]
) -> None:
    try:
        check_password(password, login=login, names=names)
    except WeakPasswordError:
        return
    assert len(password) >= MIN_CHARS
    assert len(set(fold(password))) >= MIN_DISTINCT
    assert login.casefold() not in password.casefold()
