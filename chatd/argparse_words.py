"""argparse's own words (``usage:``, ``options``, its error messages) in the language of a
command-line program: the admin command and chatd-cli both use this module, and
``tools/catalogues.py`` extracts it into both catalogues.

argparse looks every word it prints up through its module-level ``_`` and ``ngettext``
(``from gettext import gettext as _, ngettext``) at the moment it prints it: :func:`speaking`
swaps them for the translations of a :class:`~chatd.i18n.Voice` for the time of a command, and
puts the originals back after.  The message ids are argparse's own (Python 3.11), marked here so
that the catalogue holds their translations; they use ``%``-style fields, which argparse fills
after translating (the catalogue test only compares ``{name}`` fields).  argparse's words for
programming errors (a parser built wrongly) are left out: no operator reads them.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from chatd.i18n import N_, Voice


def ngettext(singular: str, plural: str, n: int = 2) -> tuple[str, str]:
    """Marks a plural message id of argparse for extraction (translated by the voice)."""
    return singular, plural


WORDS = (
    N_("usage: "),
    N_("options"),
    N_("positional arguments"),
    N_("subcommands"),
    N_("show this help message and exit"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("unrecognized arguments: %s"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("unexpected option string: %s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
)
PLURAL_WORDS = (ngettext("expected %s argument", "expected %s arguments"),)


@contextlib.contextmanager
def speaking(voice: Voice) -> Iterator[None]:
    """argparse speaks ``voice``'s language until the block ends."""
    module = vars(argparse)
    saved = module["_"], module["ngettext"]

    def gettext(message: str) -> str:
        # argparse also passes None (a subparsers group without a description).
        return voice.catalogue.gettext(message) if message else message

    def plural(singular: str, plural: str, n: int) -> str:
        return voice.catalogue.ngettext(singular, plural, n)

    module["_"], module["ngettext"] = gettext, plural
    try:
        yield
    finally:
        module["_"], module["ngettext"] = saved
