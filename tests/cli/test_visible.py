"""The one function every chatd-cli printer goes through, as properties: whatever the server
sends, what reaches the terminal holds no control character but the line feeds allowed, and
no bidirectional control; ``--json`` lines keep the data."""

from __future__ import annotations

import io
import json
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from clients.cli.directory import Directory
from clients.cli.errors import CliError
from clients.cli.render import Output, conversation_line, event_line
from clients.cli.visible import safe_json, visible

BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x61C)}
ANYTHING = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
AWKWARD = st.text(
    st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.sampled_from(["\r", "\n", "\t", "\x1b", "\x9b", "\x85", "\x7f", "\u202e", "\u2066"]),
    ),
    max_size=60,
)
UNTRUSTED = st.one_of(ANYTHING, AWKWARD)


def harmless(out: str, *, newlines: bool) -> bool:
    for ch in out:
        if ch == "\n" and newlines:
            continue
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in BIDI:
            return False
    return True


@given(UNTRUSTED)
def test_visible_output_holds_no_control_and_no_bidi(text: str) -> None:
    assert harmless(visible(text), newlines=False)
    assert "\n" not in visible(text)
    assert harmless(visible(text, newlines=True), newlines=True)
    assert visible(text, newlines=True).count("\n") == text.count("\n")


@given(st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), max_size=60))
def test_visible_leaves_ordinary_text_alone(text: str) -> None:
    assert visible(text) == text


@given(UNTRUSTED)
def test_json_lines_keep_the_data_and_show_nothing_untrusted(text: str) -> None:
    line = safe_json(json.dumps({"text": text}, ensure_ascii=False))
    assert harmless(line, newlines=False)
    assert json.loads(line) == {"text": text}


@given(UNTRUSTED, UNTRUSTED, UNTRUSTED)
def test_every_printed_line_is_harmless(text: str, name: str, first_name: str) -> None:
    who = Directory({"id": 1, "first_name": first_name, "last_name": "X", "structure": name})
    event = {"conv": 3, "seq": 2, "kind": "message", "sender": 1, "ts": None, "text": text}
    created = {"conv": 3, "seq": 1, "kind": "created", "sender": 1, "ts": None, "name": name}
    entry = {"conv": 3, "name": name, "unread": 1, "last": event}
    out, err = io.StringIO(), io.StringIO()
    human = Output(False, out, err)
    human.result(event_line(event, who), event)
    human.result(event_line(created, who), created)
    human.result(conversation_line(entry, who), entry)
    human.note(who.name_with_structure(1))
    human.error(CliError(text, code="invalid_request"))
    assert harmless(out.getvalue() + err.getvalue(), newlines=True)
    # A name never breaks its line: the lines are the results', the text's continuation lines.
    assert out.getvalue().count("\n") == 3 + text.count("\n")
    scripts = Output(True, out := io.StringIO(), err := io.StringIO())
    scripts.result("", event)
    scripts.error(CliError(text, code="invalid_request"))
    assert harmless(out.getvalue() + err.getvalue(), newlines=True)
    assert json.loads(out.getvalue())["text"] == text


def test_caret_notation_and_code_points() -> None:
    assert visible("\r[99] 10:00 ! Dr X") == "^M[99] 10:00 ! Dr X"
    assert visible("\x1b]52;c;eA==\x07") == "^[]52;c;eA==^G"
    assert visible("\x9b2J\x7f") == "<U+009B>2J^?"
    assert visible("Suivi \u202eTNEITAP") == "Suivi <U+202E>TNEITAP"
    assert visible("a\tb\nc") == "a^Ib^Jc"
    assert visible("a\tb\nc", newlines=True) == "a    b\nc"
    assert visible("\U0001f9d1\u200d\u2695\ufe0f") == "\U0001f9d1\u200d\u2695\ufe0f"  # kept
