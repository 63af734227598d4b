"""The password rule, as one pure function: :func:`check_password`.

A password protecting health data stands alone (no second factor yet), so the floor is
ANSSI's for that case: at least :data:`MIN_CHARS` characters.  Length is not enough on its
own, so the obvious is refused too, each time with a sentence that says why:

* the login, or anything containing it (case- and accent-insensitive);
* the user's first or last name (each part of three letters or more);
* a common password or a simple variant of one: ``chatd/core/common_passwords.txt``, a list written
  for chatd (French and English words with the usual suffixes, digit runs, keyboard walks on
  AZERTY and QWERTY, repeated characters), compared after folding case and accents and
  undoing the usual letter-for-digit swaps (``p@ssw0rd``);
* an alphabet, digit or keyboard-row sequence, forwards or backwards, possibly repeated;
* fewer than :data:`MIN_DISTINCT` different characters.

Nothing here does I/O at import: the list is read from the installed package the first time
a password is checked.  Each refusal is a sentence marked for translation (``N_``) with a
stable ``reason`` key (:data:`REASONS`) in its details.  :data:`RULE` is the rule as told to a
person *before* they type a new password (:data:`RULE_TEXT` filled, :func:`rule` in a
language).
"""

from __future__ import annotations

import functools
import importlib.resources
import secrets
import unicodedata
from collections.abc import Iterable

from chatd.core.errors import WeakPasswordError
from chatd.i18n import N_, Language, Text

# The longest password accepted at all; the hashing (chatd.crypto.passwords) cuts there too.
MAX_PASSWORD_BYTES = 1024
MIN_CHARS = 12  # ANSSI's floor for a password alone protecting sensitive data
MIN_DISTINCT = 6
MIN_NAME_CHARS = 3  # shorter name parts ("Li", "Ng") would refuse too much by coincidence
COMMON_FILE = "common_passwords.txt"

RULE = N_(
    "A password has at least {min} characters, {distinct} of them different;"
    " it must not contain your login or your name, nor be a common password"
    " or a keyboard or alphabet sequence."
)
RULE_TEXT = Text(RULE, {"min": MIN_CHARS, "distinct": MIN_DISTINCT})

# The ``reason`` of each refusal (``WeakPasswordError.details["reason"]``): stable keys.
REASONS = frozenset(
    {"too_short", "too_long", "login", "name", "common", "sequence", "distinct", "same"}
)


def rule(lang: Language) -> str:
    """The rule, said before a new password is typed, in ``lang``."""
    return RULE_TEXT.render(lang)


# Keyboard rows (AZERTY and QWERTY), digits and the alphabet: a password that is a stretch of
# one of these, forwards or backwards, however many times repeated, is refused.
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "azertyuiopqsdfghjklmwxcvbn",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertyuiopasdfghjklzxcvbnm",
    "&é\"'(-è_çà)=",  # the AZERTY digit row, unshifted
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1aqw2zsx3edc4rfv5tgb6yhn7uj8ik9ol0pm",
)

# Letter-for-digit (and symbol) swaps undone before looking a password up in the list.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "@": "a", "$": "s", "€": "e", "!": "i", "|": "i"})  # fmt: skip
_TRAILING = "!?.,;:*#$%&+-_=@/ "
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or copied by hand


def fold(text: str) -> str:
    """``text`` compared the way a person would: case and accents ignored."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _deleet(text: str) -> str:
    return text.translate(_LEET)


@functools.cache
def common_passwords() -> tuple[frozenset[str], frozenset[str]]:
    """The packaged list, folded; and the same with letter-for-digit swaps undone."""
    text = importlib.resources.files("chatd.core").joinpath(COMMON_FILE).read_text("utf-8")
    entries = frozenset(
        fold(line.strip()) for line in text.splitlines() if line.strip() and line[0] != "#"
    )
    return entries, frozenset(_deleet(e) for e in entries)


def _is_sequence(folded: str) -> bool:
    for sequence in SEQUENCES:
        for forwards in (sequence, sequence[::-1]):
            # Enough turns of the sequence to hold any stretch of ``folded``'s length.
            turns = len(folded) // len(forwards) + 2
            if folded in forwards * turns:
                return True
    return False


def _candidates(folded: str) -> set[str]:
    """The password and its variants without trailing symbols, then without trailing digits."""
    bare = folded.rstrip(_TRAILING)
    return {folded, bare, bare.rstrip("0123456789").rstrip(_TRAILING)}


def _name_parts(names: Iterable[str]) -> set[str]:
    parts: set[str] = set()
    for name in names:
        folded = fold(name).strip()
        pieces = folded.replace("-", " ").replace("'", " ").replace("’", " ").split()
        parts.update(p for p in (folded, *pieces) if len(p) >= MIN_NAME_CHARS)
    return parts


def _refuse(key: str, sentence: str, **values: object) -> WeakPasswordError:
    assert key in REASONS
    return WeakPasswordError(sentence, reason=key, **values)


def check_password(
    password: str,
    *,
    login: str = "",
    names: Iterable[str] = (),
    current: str | None = None,
) -> None:
    """Raise :class:`~chatd.core.errors.WeakPasswordError` (code ``weak_password``, its message
    the reason in a sentence, ``details["reason"]`` a stable key of :data:`REASONS`) unless
    ``password`` may become the password of the account ``login`` whose first and last names
    are ``names``.  ``current``: the password it replaces, which it must differ from."""
    if len(password) < MIN_CHARS:
        raise _refuse(
            "too_short",
            N_("A password has at least {min} characters; this one has {count}."),
            min=MIN_CHARS,
            count=len(password),
        )
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise _refuse("too_long", N_("A password has at most {max} bytes."), max=MAX_PASSWORD_BYTES)
    if current is not None and password == current:
        raise _refuse("same", N_("The new password must be different from the current one."))
    folded = fold(password)
    login_forms = {fold(login).strip(), login.strip().casefold()} - {""}
    bare_login = "".join(ch for ch in fold(login) if ch.isalnum())
    if len(bare_login) >= 4:
        login_forms.add(bare_login)
    squeezed = "".join(ch for ch in folded if ch.isalnum())
    if any(form in folded or form in password.casefold() for form in login_forms) or (
        len(bare_login) >= 4 and bare_login in squeezed
    ):
        raise _refuse("login", N_("A password must not contain your login."))
    if any(part in folded for part in _name_parts(names)):
        raise _refuse("name", N_("A password must not contain your first or last name."))
    entries, deleeted = common_passwords()
    candidates = _candidates(folded)
    if candidates & entries or {_deleet(c) for c in candidates} & deleeted:
        raise _refuse(
            "common",
            N_(
                "This is one of the most common passwords (or a simple variant of one):"
                " it is tried first by anyone guessing. Choose another one."
            ),
        )
    if _is_sequence(folded):
        raise _refuse(
            "sequence",
            N_(
                "This password is a keyboard or alphabet sequence: it is tried first by"
                " anyone guessing. Choose another one."
            ),
        )
    distinct = len(set(folded))
    if distinct < MIN_DISTINCT:
        raise _refuse(
            "distinct",
            N_("A password needs at least {min} different characters; this one has {count}."),
            min=MIN_DISTINCT,
            count=distinct,
        )


def one_time_password(groups: int = 4, size: int = 4) -> str:
    """A random password to read out or copy by hand: ``k7pm-4xq2-hb9t-w3nd`` (16 characters
    of an alphabet of 31 without look-alikes, about 79 bits, in groups)."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(size)) for _ in range(groups))
