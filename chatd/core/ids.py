"""Typed ids, and attachment ids as the protocol writes them.

``UserId``, ``ConvId`` and ``Seq`` are plain ints at run time; to the type checker they are
three types, so that a conversation id passed where a user id is expected (both are small
integers, and a mix-up shows a message to the wrong person) is an error before it runs.  They
are given where an id is born (a row read, a request decoded) and carried from there.
Attachment ids are pure here so that the protocol module can check them without loading the
crypto that seals attachments.
"""

from __future__ import annotations

from typing import NewType

UserId = NewType("UserId", int)
ConvId = NewType("ConvId", int)
Seq = NewType("Seq", int)  # an event's position in its conversation, from 1

WIRE_ID_CHARS = 16
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def format_attachment_id(attachment_id: int) -> str:
    """The id as the protocol shows it: 16 lower-case hex digits (ids do not fit 2**53)."""
    return f"{attachment_id:016x}"


def parse_attachment_id(text: object) -> int | None:
    """The id of a wire id (16 hex digits, any case), or None if it is not one."""
    if (
        not isinstance(text, str)
        or len(text) != WIRE_ID_CHARS
        or not all(ch in _HEX_DIGITS for ch in text)
    ):
        return None
    value = int(text, 16)
    return value if 0 < value < 2**63 else None
