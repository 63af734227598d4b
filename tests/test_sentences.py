"""The server's sentences are written for people, in French first and English on request.

The protocol's validation says what is wrong in words a nurse understands ("Le message dépasse
20 000 caractères."), with ``field`` in the details for the client program; every error class
has a French sentence; numbers are written as each language writes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from babel.messages.pofile import read_po

from chatd.core import conversations
from chatd.core.conversations import MAX_ATTACHMENTS, MAX_MEMBERS, MAX_NAME_CHARS, MAX_TEXT_CHARS
from chatd.core.errors import ChatdError, ClientError, ServerRunningError, ValidationError
from chatd.core.records import VerifyProblem
from chatd.gateway import protocol as p
from chatd.gateway.session import SessionStateError
from chatd.i18n import Text, server_catalogue

NNBSP = "\u202f"  # the thousands separator of French numbers
NBSP = "\u00a0"  # before : ; ? ! in French


def refused(**frame: Any) -> ClientError:
    """The error ``decode_request`` answers ``frame`` with."""
    with pytest.raises(p.BadRequest) as bad:
        p.decode_request(msgpack.packb({"rid": 1, **frame}, use_bin_type=True))
    return bad.value.error


def said(error: ChatdError) -> tuple[str, str, object]:
    return error.message_in("fr"), error.message_in("en"), error.details.get("field")


SEND = {"op": "send", "client_msg_id": "c1", "conv": 7}
CREATE = {"op": "create", "client_msg_id": "c1", "members": [2], "name": "Équipe de nuit"}


def test_a_message_one_character_too_long_is_said_with_the_limit() -> None:
    error = refused(**SEND, text="x" * (MAX_TEXT_CHARS + 1))
    assert said(error) == (
        f"Le message dépasse 20{NNBSP}000 caractères.",
        "The message is over 20,000 characters.",
        "text",
    )
    assert (error.code, error.details["max"]) == ("invalid_request", MAX_TEXT_CHARS)
    # The store's own rule says the same.
    with pytest.raises(ValidationError) as rule:
        conversations.check_body(conversations.MessageBody("x" * (MAX_TEXT_CHARS + 1)))
    assert said(rule.value) == said(error)


@pytest.mark.parametrize(
    ("frame", "french", "english", "field"),
    [
        (
            {**SEND, "text": ""},
            "Le message est vide.",
            "The message is empty.",
            "text",
        ),
        (
            SEND,  # no text and no attachment
            "Le message est vide.",
            "The message is empty.",
            "text",
        ),
        (
            {**SEND, "text": 12},
            "Le message doit être du texte.",
            "The message must be text.",
            "text",
        ),
        (
            {**CREATE, "name": "n" * (4 * MAX_NAME_CHARS + 1)},
            "Le nom de la conversation dépasse 200 caractères.",
            "The conversation name is over 200 characters.",
            "name",
        ),
        (
            {**CREATE, "name": ""},
            "Le nom de la conversation est vide.",
            "The conversation name is empty.",
            "name",
        ),
        (
            {**CREATE, "members": []},
            "Une conversation doit compter au moins un autre participant.",
            "A conversation needs at least one other participant.",
            "members",
        ),
        (
            {**CREATE, "members": list(range(1, MAX_MEMBERS + 2))},
            "Une conversation compte au plus 500 participants.",
            "A conversation has at most 500 participants.",
            "members",
        ),
        (
            {**CREATE, "members": ["bob"]},
            "La liste des participants n'est pas valide.",
            "The list of participants is not valid.",
            "members",
        ),
        (
            {**SEND, "text": "hi", "attachments": ["00000000000000a1"] * (MAX_ATTACHMENTS + 1)},
            "Un message comporte au plus 10 pièces jointes.",
            "A message carries at most 10 attachments.",
            "attachments",
        ),
        (
            {**SEND, "text": "hi", "attachments": ["00000000000000a1", "00000000000000A1"]},
            "La liste des pièces jointes n'est pas valide"
            f"{NBSP}: chaque pièce jointe n'y figure qu'une fois.",
            "The list of attachments is not valid: each attachment is given once.",
            "attachments",
        ),
        (
            {**SEND, "conv": 0, "text": "hi"},
            "Ce numéro de conversation n'est pas valide.",
            "This conversation number is not valid.",
            "conv",
        ),
        (
            {"op": "history", "conv": 1, "limit": 500},
            "Le nombre de messages demandés doit être compris entre 1 et 100.",
            "The number of messages asked for must be from 1 to 100.",
            "limit",
        ),
        (
            {**SEND, "text": "hi", "tag": "urgent"},
            "Un message ne peut être marqué que comme important ou comme question.",
            "A message can only be marked as important or as a question.",
            "tag",
        ),
        (
            {"op": "users", "ids": list(range(1, 202))},
            "Recherchez au plus 200 utilisateurs à la fois.",
            "Look up at most 200 users at a time.",
            "ids",
        ),
        (
            {"op": "users", "ids": [], "logins": []},
            "Recherchez de 1 à 200 utilisateurs à la fois.",
            "Look up from 1 to 200 users at a time.",
            "ids",
        ),
        # What only a client program can get wrong: the generic sentence names the field.
        (
            {**SEND, "text": "hi", "colour": "red"},
            "La requête est mal formée (champ inconnu colour).",
            "The request is malformed (unknown field colour).",
            "colour",
        ),
        (
            {"op": "send", "conv": 7, "text": "hi"},
            "La requête est mal formée (le champ client_msg_id est absent).",
            "The request is malformed (field client_msg_id is missing).",
            "client_msg_id",
        ),
        (
            {**SEND, "client_msg_id": "bad\nid", "text": "hi"},
            "La requête est mal formée (champ client_msg_id).",
            "The request is malformed (field client_msg_id).",
            "client_msg_id",
        ),
    ],
)
def test_each_field_a_client_can_get_wrong_has_a_sentence(
    frame: dict[str, Any], french: str, english: str, field: str
) -> None:
    error = refused(**frame)
    assert error.code == "invalid_request"
    assert said(error) == (french, english, field)


def test_a_frame_without_a_usable_rid_or_op_is_refused_by_field() -> None:
    assert said(refused(op="ping", rid=-1)) == (
        "La requête est mal formée (champ rid).",
        "The request is malformed (field rid).",
        "rid",
    )
    assert said(refused(op=3))[2] == "op"


def test_verify_problems_are_said_in_the_operators_language() -> None:
    problem = VerifyProblem(3, 12, Text("hash mismatch: the row was altered"))
    assert str(problem) == "conversation 3, seq 12: hash mismatch: the row was altered"
    assert problem.reason == "hash mismatch: the row was altered"  # --json: English
    assert problem.said("fr") == (
        f"conversation 3, seq 12{NBSP}: empreinte différente{NBSP}: la ligne a été modifiée"
    )


def _subclasses(cls: type[ChatdError]) -> Iterator[type[ChatdError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


ERRORS = sorted({ChatdError, *_subclasses(ChatdError)}, key=lambda c: c.__name__)


def test_every_error_class_is_covered() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert {"ClientError", "WeakPasswordError", "SessionStateError"} <= names
    assert {"ConfigError", "KeyFileError", "ServerRunningError"} <= names
    assert SessionStateError in ERRORS and ServerRunningError in ERRORS


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_has_a_french_sentence(cls: type[ChatdError]) -> None:
    """Client errors are read by the people using the clients, the others by operators."""
    english = cls.default_message
    french = server_catalogue("fr").gettext(english)
    assert french != english, f"{cls.__name__}: no French for {english!r}"
    assert cls().message_in("fr") == french
    assert cls().message_in("en") == cls().message == english


def test_client_errors_default_to_a_finished_french_sentence() -> None:
    client_errors = [cls for cls in ERRORS if issubclass(cls, ClientError)]
    assert len(client_errors) > 30
    for cls in client_errors:
        french = cls().message_in("fr")
        assert french.endswith(".") and "{" not in french, (cls.__name__, french)


CATALOGUES = (
    Path(__file__).parent.parent / "chatd/locale/fr/LC_MESSAGES/chatd.po",
    Path(__file__).parent.parent / "clients/cli/locale/fr/LC_MESSAGES/chatd_cli.po",
)


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.name)
def test_french_puts_a_no_break_space_before_colons_semicolons_and_marks(path: Path) -> None:
    """French typography: ``:``, ``;``, ``?`` and ``!`` follow a no-break space, so that a
    line never starts with one (a plain space there is a slip of the translator's keyboard)."""
    with path.open("rb") as source:
        catalogue = read_po(source)
    slips = []
    for message in catalogue:
        texts = [message.string] if isinstance(message.string, str) else list(message.string)
        slips += [text for text in texts if message.id and re.search(r"[ \t][;:!?]", text)]
    assert slips == []
