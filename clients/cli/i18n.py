"""The language chatd-cli speaks: French first, English on request.

Every sentence a person reads is an English message id marked for the ``chatd_cli``
catalogue (``clients/cli/locale``) and translated when it is said::

    from clients.cli.i18n import _, ngettext
    _("Sent to #{conv} (seq {seq}).", conv=str(conv), seq=str(seq))
    ngettext("{n} other session closed.", "{n} other sessions closed.", count)

Fields are ``{name}``, filled after translation; whole numbers are written as the language
writes them (``20 000`` in French) — so identifiers a person may type again (a conversation's
number, a seq) are passed as text.

**Which language.**  The account's (``user.language`` of the login answer and of ``hello``,
cached in the session file; ``"fr"``, ``"en"`` or null), else the terminal's (``LC_ALL``,
``LC_MESSAGES``, ``LANG``), else French.  ``main`` decides it from the cached session of the
current server before it builds the argument parser (argparse's own words included, see
:func:`chatd.argparse_words.speaking`);
a login answer or a ``hello`` that says otherwise changes it at once
(:func:`follow`).  The server is told the same language (``lang`` in ``auth``,
``Accept-Language`` on HTTP requests), so that its sentences come in it too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from babel.numbers import format_decimal

from chatd.i18n import (
    BABEL_LOCALES,
    DEFAULT_LANGUAGE,
    N_,
    Language,
    Voice,
    from_environment,
    language,
)

__all__ = ["N_", "VOICE", "_", "ngettext"]

LOCALE_DIR = Path(__file__).parent / "locale"
VOICE = Voice("chatd_cli", LOCALE_DIR)
_ = VOICE
ngettext = VOICE.ngettext


def choose(account: object = None) -> Language:
    """The account's language if it chose one, else the terminal's, else French."""
    return language(account) or from_environment() or DEFAULT_LANGUAGE


def follow(account: object) -> Language:
    """Speak the language :func:`choose` gives for the account's setting ``account``."""
    VOICE.use(choose(account))
    return VOICE.lang


def terminal_language() -> Language | None:
    return from_environment()


def header() -> str:
    """The ``Accept-Language`` header of chatd-cli's HTTP requests."""
    return VOICE.lang


def decimal(value: float, digits: int = 0) -> str:
    """A number with up to ``digits`` decimals (exactly ``digits`` if given) as the language
    writes it: ``0,5`` in French."""
    pattern = "#,##0." + "0" * digits if digits else None
    return str(format_decimal(value, format=pattern, locale=BABEL_LOCALES[VOICE.lang]))


def date_time(moment: datetime) -> str:
    """``01/12/2026 14:05`` in French, in the terminal's time zone."""
    return VOICE.date_time(moment)


def language_name(lang: object) -> str:
    match language(lang):
        case "fr":
            return _("French")
        case "en":
            return _("English")
        case _:
            return str(lang)
