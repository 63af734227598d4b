r"""Showing a string chatd-cli cannot trust, so that the terminal shows it and obeys nothing.

Every string a server gives (message texts, conversation names, people's names and profile
fields, logins, file names, the server's own error sentences) may hold characters a terminal
obeys or a display reorders: ``\r`` then a forged line, ``ESC [2J`` (clear the screen),
``ESC ]0;…`` (set the window title), ``ESC ]52;…`` (write the clipboard), U+202E (right-to-left
override).  The server refuses them in new input (``chatd/core/text.py``), but text stored
before that rule is served as it was, and a server is not to be trusted with the terminal
anyway.  So :func:`visible` is the one function every printer goes through:

* C0 controls and DEL in caret notation: ``ESC`` → ``^[``, ``\r`` → ``^M``, DEL → ``^?``;
  a line feed is kept only where the caller allows line breaks (a message text), and a tab
  there becomes spaces;
* C1 controls (U+0080–U+009F, of which U+009B is a one-byte CSI), bidirectional controls,
  the other invisible format characters, line and paragraph separators and lone surrogates
  as ``<U+202E>``.  U+200C and U+200D (joiners) are kept: emoji sequences and Persian script
  need them, and they move nothing.

:func:`safe_json` does the same for ``--json`` lines without changing the data: those
characters become JSON ``\uXXXX`` escapes, which a script decodes to the same string.
"""

from __future__ import annotations

import unicodedata

JOINERS = frozenset("\u200c\u200d")
TAB = "    "


def untrusted(ch: str) -> bool:
    """Whether ``ch`` is a character a terminal obeys or a display hides or reorders."""
    category = unicodedata.category(ch)
    return category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and ch not in JOINERS)


def shown(ch: str) -> str:
    """How :func:`visible` shows one untrusted character."""
    code = ord(ch)
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"<U+{code:04X}>"


def visible(text: object, *, newlines: bool = False) -> str:
    """``text`` (made a string) with every untrusted character shown, never obeyed.

    ``newlines``: line feeds are kept (and tabs become spaces) — for a message text, whose
    continuation lines the caller indents; otherwise they are shown ``^J``, so that a name
    or a login always stays on its line."""
    raw = text if isinstance(text, str) else str(text)
    out: list[str] = []
    for ch in raw:
        if not untrusted(ch) or (newlines and ch == "\n"):
            out.append(ch)
        elif newlines and ch == "\t":
            out.append(TAB)
        else:
            out.append(shown(ch))
    return "".join(out)


def safe_json(line: str) -> str:
    r"""A JSON text with every untrusted character written as a ``\uXXXX`` escape.

    Such characters can only occur inside JSON strings, where the escape means the same
    character: the data is unchanged, the terminal sees only printable text.  A lone
    surrogate (``json.dumps`` writes it raw with ``ensure_ascii=False``) becomes its escape
    too, which JSON allows."""
    return "".join(_json_escape(ch) if untrusted(ch) else ch for ch in line)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
