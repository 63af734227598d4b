"""The character rules of chatd.core.text, as properties: whatever a text or a name holds,
what the rules accept holds nothing a terminal obeys or a display reorders."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.core.accounts import check_account_fields
from chatd.core.conversations import MessageBody, check_body, clean_name
from chatd.core.errors import ValidationError
from chatd.core.records import UserProfile
from chatd.core.text import BIDI_CONTROLS, first_forbidden_in_name, first_forbidden_in_text

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
# Mostly letters, with the characters the rules are about mixed in.
AWKWARD = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from(["\t", "\n", "\r", "\x1b", "\x9b", "\u202e", "\u2066", "\u200f", "\u200d"]),
    ),
    max_size=40,
)


@given(st.one_of(ANY_TEXT, AWKWARD))
def test_an_accepted_text_holds_no_control_but_tab_and_line_feed(text: str) -> None:
    body = MessageBody(text or "x")
    try:
        check_body(body)
    except ValidationError as exc:
        if exc.details.get("field") == "text" and "char" in exc.details:
            assert first_forbidden_in_text(body.text) is not None
        return
    assert all(ch in "\t\n" or unicodedata.category(ch) not in ("Cc", "Cs") for ch in body.text)


@given(st.one_of(ANY_TEXT, AWKWARD))
def test_an_accepted_name_holds_no_control_no_bidi_and_no_invisible(raw: str) -> None:
    try:
        name = clean_name(raw)
    except ValidationError as exc:
        assert exc.details["field"] == "name"
        return
    assert not BIDI_CONTROLS & set(name)
    for ch in name:
        assert unicodedata.category(ch) not in ("Cc", "Cs", "Zl", "Zp")
        assert unicodedata.category(ch) != "Cf" or ch in "\u200c\u200d"


@given(st.one_of(ANY_TEXT, AWKWARD))
def test_profile_fields_follow_the_name_rule(value: str) -> None:
    profile = UserProfile("Anne", "Martin", structure=value)
    bad = first_forbidden_in_name(value)
    if bad is None:
        check_account_fields("anne", profile)
    else:
        with pytest.raises(ValidationError) as refused:
            check_account_fields("anne", profile)
        assert refused.value.details == {"field": "structure", "char": f"U+{ord(bad):04X}"}


def test_the_sentence_names_the_character_by_its_code_point() -> None:
    with pytest.raises(ValidationError) as refused:
        check_body(MessageBody("a\x1b[2J"))
    assert "U+001B" in refused.value.message and "\x1b" not in refused.value.message
