"""Typed ids: a conversation id where a user id is expected is a type error, caught by mypy."""

from __future__ import annotations

from mypy import api

MIXED_UP = """
from chatd.core.conversations import MessageBody, PostMessage
from chatd.core.ids import ConvId, UserId

def post(conv: ConvId, user: UserId) -> PostMessage:
    return PostMessage(user, conv, MessageBody("x"), "m1")  # swapped
"""


def test_swapped_ids_do_not_type_check() -> None:
    out, _, status = api.run(["--config-file", "", "--strict", "--no-incremental", "-c", MIXED_UP])
    assert status == 1, out
    assert 'Argument 1 to "PostMessage" has incompatible type "UserId"; expected "ConvId"' in out
    assert 'Argument 2 to "PostMessage" has incompatible type "ConvId"; expected "UserId"' in out


def test_ids_in_their_places_type_check() -> None:
    fixed = MIXED_UP.replace("PostMessage(user, conv,", "PostMessage(conv, user,")
    out, _, status = api.run(["--config-file", "", "--strict", "--no-incremental", "-c", fixed])
    assert status == 0, out
