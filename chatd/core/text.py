"""Which characters a message text, a name or a profile field may hold.

Pure rules, no I/O.  Why they exist: a terminal obeys control characters, and a display
reorders text around bidirectional controls.  A message holding ``\\r`` then a forged line
(``[99] 10:00 ! Dr X: …``), an escape sequence (clear the screen, set the window title, write
the clipboard through OSC 52), or a conversation name holding U+202E (RIGHT-TO-LEFT OVERRIDE)
would show a clinician something another person never wrote.

* **Message texts** refuse every C0 and C1 control character (Unicode category ``Cc``:
  U+0000–U+001F, U+007F–U+009F) except tab and line feed, which are part of writing.  ``\\r``
  is refused too: clients send ``\\n`` line breaks.  Bidirectional controls stay allowed in
  texts: someone writing Arabic or Hebrew beside French may need them, and the text is shown
  inside a message line whose sender and time come first, so a reordering cannot forge them.
* **Names and profile fields** (conversation names, first and last name, profession,
  structure, e-mail, RPPS, login) are shown inline in lines built around them, where a
  reordering or an invisible character misleads.  They refuse every ``Cc`` (tab and line
  feed included), the bidirectional embeddings, overrides and isolates (U+202A–U+202E,
  U+2066–U+2069), and also the bidirectional marks U+200E, U+200F and U+061C: these do not
  reorder a span, but they are invisible and a name has no use for them (a name must be
  exactly what it looks like).  The other invisible format characters (category ``Cf``: zero
  width space, word joiner, BOM, soft hyphen, tag characters…) are refused for the same
  reason, except U+200C and U+200D (zero width non-joiner and joiner), which Persian script
  and emoji sequences need.  Line and paragraph separators (U+2028, U+2029) and lone
  surrogates are refused.

Text stored before these rules cannot be rewritten (the log is append-only and hash-chained):
it is served as it was stored, and clients must show it safely anyway (``chatd-cli`` does,
see ``clients/cli/visible.py``).
"""

from __future__ import annotations

import re
import unicodedata

ALLOWED_TEXT_CONTROLS = frozenset("\t\n")
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]  # LRE RLE PDF LRO RLO
    + [chr(c) for c in range(0x2066, 0x206A)]  # LRI RLI FSI PDI
    + ["\u200e", "\u200f", "\u061c"]  # LRM RLM ALM
)
JOINERS = frozenset("\u200c\u200d")  # Persian script and emoji sequences need them


def code_point(ch: str) -> str:
    """``U+202E``: how a sentence names a character it refuses (never the character)."""
    return f"U+{ord(ch):04X}"


# Exactly the categories Cc (U+0000–U+001F, U+007F–U+009F) and Cs (surrogates) less tab and
# line feed: one regular-expression scan, since every message on the write path goes through it.
_FORBIDDEN_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def first_forbidden_in_text(text: str) -> str | None:
    """The first character a message text may not hold, or None."""
    found = _FORBIDDEN_IN_TEXT.search(text)
    return None if found is None else found.group()


def first_forbidden_in_name(name: str) -> str | None:
    """The first character a name or a profile field may not hold, or None."""
    for ch in name:
        if ch in BIDI_CONTROLS:
            return ch
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and ch not in JOINERS):
            return ch
    return None
