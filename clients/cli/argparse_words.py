"""argparse's own words, marked for chatd-cli's catalogue.

argparse (Python 3.11) looks its sentences up through its module-level ``_`` and
``ngettext``; :func:`clients.cli.i18n.teach_argparse` points them at chatd-cli's catalogue.
The message ids below are argparse's, to the character, so that the catalogue carries their
French.  They are %-style, filled by argparse after translation: a translation keeps every
``%s``, ``%r`` and ``%(name)s`` of its message id.  argparse follows a section's heading
(``options``) with a colon of its own: the French heading ends with a no-break space, so that
the colon is spaced as French writes it.  Only the words chatd-cli's parser can show
are here (no file arguments, no version action, no programming errors).
"""

from __future__ import annotations

from chatd.i18n import N_


def ngettext(singular: str, plural: str, n: int) -> tuple[str, str]:
    """Marks a plural pair (the extractor's ``ngettext:1,2``); translates nothing."""
    return singular, plural


WORDS = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("unexpected option string: %s"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
)
PLURALS = (ngettext("expected %s argument", "expected %s arguments", 2),)
