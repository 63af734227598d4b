"""Languages: French first, English on request, through gettext catalogues.

Sentences are written in the code in English, as gettext message ids, and translated from
compiled catalogues (``.po`` sources, ``.mo`` built by ``setup.py`` at install time) — never
from dictionaries in the code.  Two catalogue domains: ``chatd`` (the server and its admin
command, under ``chatd/locale``) and ``chatd_cli`` (the terminal client, under
``clients/cli/locale``).  English is the message ids themselves.

A sentence that is built before the reader's language is known — an error raised deep in
the server, sent later to a client whose language the connection knows — is a
:class:`Text`: its message id and its parameters, rendered with :meth:`Text.render`.
Parameters that are whole numbers are written as the language writes them
(``20 000`` in French).

Marking, for extraction (``pybabel extract``, see ``babel.cfg`` and the catalogue test):
``N_("…")`` marks a message id to be translated later; ``Catalogue.gettext`` and
``Catalogue.ngettext`` (bound as ``_``/``ngettext`` in a module) translate now.
"""

from __future__ import annotations

import functools
import gettext
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

from babel.dates import format_datetime
from babel.numbers import format_decimal

Language = Literal["fr", "en"]
LANGUAGES: tuple[Language, ...] = ("fr", "en")
DEFAULT_LANGUAGE: Language = "fr"
BABEL_LOCALES: Mapping[Language, str] = {"fr": "fr_FR", "en": "en_GB"}

SERVER_DOMAIN = "chatd"
SERVER_LOCALE_DIR = Path(__file__).parent / "locale"


def N_(msgid: str) -> str:
    """Mark ``msgid`` for translation later (the catalogue test finds it)."""
    return msgid


def language(value: object) -> Language | None:
    """``value`` as a supported language (``"fr"``, ``"fr-FR"``, ``"en_GB.UTF-8"`` …)."""
    if not isinstance(value, str):
        return None
    head = value.strip().lower().replace("-", "_").split(".")[0].split("_")[0]
    return head if head in LANGUAGES else None


def from_accept_language(header: str | None) -> Language | None:
    """The preferred supported language of an HTTP ``Accept-Language`` header."""
    if not header:
        return None
    ranked: list[tuple[float, int, Language]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        lang = language(tag)
        if lang is not None and weight > 0:
            ranked.append((-weight, index, lang))
    return min(ranked)[2] if ranked else None


def from_environment(environ: Mapping[str, str] | None = None) -> Language | None:
    """The terminal's language: the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` that is
    set (POSIX order), if it is one chatd speaks."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return language(value)
    return None


# ----------------------------------------------------------------------------- catalogues


class CatalogueMissing(RuntimeError):
    """A compiled catalogue is not installed: ``pip install -e .`` builds them."""


@dataclass(frozen=True)
class Catalogue:
    """One domain's translations in one language."""

    lang: Language
    translations: gettext.NullTranslations

    def gettext(self, msgid: str) -> str:
        return self.translations.gettext(msgid)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def number(self, value: int | float) -> str:
        return number(value, self.lang)

    def format(self, msgid: str, **params: Any) -> str:
        """Translate ``msgid`` and fill its ``{name}`` fields (numbers in the language's
        format)."""
        return fill(self.gettext(msgid), localised(params, self.lang))


@functools.cache
def catalogue(domain: str, directory: Path, lang: Language) -> Catalogue:
    if lang == "en":
        return Catalogue(lang, gettext.NullTranslations())
    try:
        translations = gettext.translation(domain, directory, languages=[lang])
    except FileNotFoundError:
        raise CatalogueMissing(
            f"The {lang} catalogue of {domain} is not compiled under {directory};"
            " reinstall chatd (pip install -e .) to build it."
        ) from None
    return Catalogue(lang, translations)


def server_catalogue(lang: Language) -> Catalogue:
    return catalogue(SERVER_DOMAIN, SERVER_LOCALE_DIR, lang)


def number(value: int | float, lang: Language) -> str:
    return str(format_decimal(value, locale=BABEL_LOCALES[lang]))


class _KeepUnknown(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, params: Mapping[str, Any]) -> str:
    """``template`` with its ``{name}`` fields filled; a field with no value, or braces that
    are not fields, are left as they are (a sentence never fails to render)."""
    try:
        return template.format_map(_KeepUnknown(params))
    except (ValueError, IndexError, AttributeError, TypeError):
        return template


def localised(params: Mapping[str, Any], lang: Language) -> dict[str, Any]:
    """Whole numbers written as ``lang`` writes them, sentences (:class:`Text`,
    :class:`Sentences`) said in ``lang``; everything else as it is."""
    return {key: _localised(value, lang) for key, value in params.items()}


def _localised(value: Any, lang: Language) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return number(value, lang)
    if isinstance(value, (Text, Sentences)):
        return value.render(lang)
    return value


def date_time(moment: datetime, lang: Language, tz: tzinfo | None = None) -> str:
    """A date and time as ``lang`` writes it (``01/12/2026 14:05``) in the time zone
    ``tz`` (default: the machine's)."""
    local = moment.astimezone(tz)
    return str(format_datetime(local, "short", tzinfo=local.tzinfo, locale=BABEL_LOCALES[lang]))


# ----------------------------------------------------------------------------- a program's voice


class Voice:
    """The language a command-line program speaks to its user, chosen once known.

    A module binds it as ``_`` (and its :meth:`ngettext` as ``ngettext``), the names the
    extractor looks for: ``_("Created user {login}.", login=login)``."""

    def __init__(self, domain: str, directory: Path, lang: Language = DEFAULT_LANGUAGE) -> None:
        self.domain = domain
        self.directory = directory
        self.lang: Language = lang

    def use(self, lang: Language) -> None:
        self.lang = lang

    @property
    def catalogue(self) -> Catalogue:
        return catalogue(self.domain, self.directory, self.lang)

    def __call__(self, msgid: str, /, **params: Any) -> str:
        return self.catalogue.format(msgid, **params)

    def ngettext(self, singular: str, plural: str, n: int, /, **params: Any) -> str:
        """The form for ``n`` (whose value fills ``{n}``)."""
        chosen = self.catalogue.ngettext(singular, plural, n)
        return fill(chosen, localised({"n": n, **params}, self.lang))

    def number(self, value: int | float) -> str:
        return number(value, self.lang)

    def date_time(self, moment: datetime, tz: tzinfo | None = None) -> str:
        return date_time(moment, self.lang, tz)


# ----------------------------------------------------------------------------- deferred text


@dataclass(frozen=True)
class Text:
    """A sentence to translate once the reader's language is known: a message id with
    ``{name}`` fields, and their values."""

    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self, lang: Language) -> str:
        return server_catalogue(lang).format(self.msgid, **self.params)

    def __str__(self) -> str:
        """English (logs and the rare place with no reader: never client content)."""
        return fill(self.msgid, self.params)


@dataclass(frozen=True)
class Sentences:
    """Several :class:`Text` said one after the other (a list of problems), as the value of
    another sentence's field."""

    texts: tuple[Text, ...]

    def render(self, lang: Language) -> str:
        return " ".join(text.render(lang) for text in self.texts)

    def __str__(self) -> str:
        return " ".join(str(text) for text in self.texts)
