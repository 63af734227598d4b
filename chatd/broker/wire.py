"""Publications as bytes between nodes (msgpack), for a network broker; pure, no I/O.

What rides on the network is chosen so that nothing sealed or personal travels, and so that
nothing needs sealing (docs/architecture.md, "What rides on NATS: pointers, never content"):

- a :class:`~chatd.broker.base.Committed` batch goes out as a **pointer only**,
  ``(conv_id, first_seq, last_seq)``: never an event's content, kind, sender, names or text.
  The receiving node reads the events from the store (its fan-out does);
- a :class:`~chatd.broker.base.ReadMarker`: ids and counters (user, conversation, read seq,
  unread count) and the id of the session that already has the answer;
- an :class:`~chatd.broker.base.EndSessions`: the reason, SHA-256 digests of tokens (never a
  token: the database does not hold them either) and a user id.

Every message is ``[version, node_id, kind, *fields]``.  The node id lets a node ignore its
own messages (it delivered them locally already).  :func:`decode` trusts nothing: whatever
reaches the subject (another version, a stray publisher, garbage) either decodes to exactly
what :func:`encode` makes, or raises :class:`WireError`, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from chatd.broker.base import Committed, EndSessions, Publication, ReadMarker, SessionEnd
from chatd.core.records import ReadState

VERSION = 1
MAX_MESSAGE_BYTES = 1024 * 1024  # a logout of every token of a large account fits
MAX_NODE_ID = 64
MAX_ORIGIN = 128
MAX_TOKENS = 10_000
TOKEN_HASH_BYTES = 32  # SHA-256
MAX_INT = 2**63 - 1  # ids and seqs are SQL BIGINTs

COMMITTED, READ_MARKER, END_SESSIONS = 1, 2, 3


class WireError(ValueError):
    """These bytes are not a publication of this version.  Never reaches a user: the message
    is logged, without its content, and dropped; the argument is a reason code for the log."""


@dataclass(frozen=True, slots=True)
class Received:
    """A decoded message: the publication and the node that sent it."""

    node_id: str
    publication: Publication


def encode(publication: Publication, node_id: str) -> bytes | None:
    """The message for ``publication``; None for a batch with nothing in it."""
    # ASCII only (CHATD_NODE_ID's letters, digits, - and _; session ids are the node id and a
    # number): a string's length is then its size, under the decoder's byte limit.
    if not node_id or len(node_id) > MAX_NODE_ID or not node_id.isascii():
        raise ValueError("a node id is 1 to 64 ASCII characters")
    fields: list[Any]
    match publication:
        case Committed():
            span = publication.span
            if span is None:
                return None
            fields = [COMMITTED, publication.conv_id, span[0], span[1]]
        case ReadMarker(user_id=user, state=state, origin=origin):
            if origin is not None and (len(origin) > MAX_ORIGIN or not origin.isascii()):
                raise ValueError("a session id is at most 128 ASCII characters")
            fields = [READ_MARKER, user, state.conv_id, state.read_seq, state.unread, origin]
        case EndSessions(reason=reason, token_hashes=tokens, user_id=user):
            fields = [END_SESSIONS, reason.value, list(tokens), user]
    data: bytes = msgpack.packb([VERSION, node_id, *fields], use_bin_type=True)
    return data


def decode(data: bytes) -> Received:
    """The publication in ``data``, or :class:`WireError`."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) > MAX_MESSAGE_BYTES:
        raise WireError("too_large")
    try:
        message = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=MAX_ORIGIN,
            max_bin_len=TOKEN_HASH_BYTES,
            max_array_len=MAX_TOKENS,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception:  # msgpack raises several types (ExtraData, FormatError, …)
        raise WireError("not_msgpack") from None
    if not isinstance(message, list) or len(message) < 3:
        raise WireError("not_an_array")
    version, node_id, kind, *fields = message
    if version != VERSION or type(version) is not int:
        raise WireError("other_version")
    if not isinstance(node_id, str) or not 1 <= len(node_id) <= MAX_NODE_ID:
        raise WireError("no_node_id")
    if not node_id.isascii():
        raise WireError("no_node_id")
    return Received(node_id, _publication(kind, fields))


def _publication(kind: object, fields: list[Any]) -> Publication:
    if kind == COMMITTED and type(kind) is int and len(fields) == 3:
        conv, first, last = (_count(value, 1) for value in fields)
        if first > last:
            raise WireError("empty_range")
        return Committed.pointer(conv, first, last)
    if kind == READ_MARKER and type(kind) is int and len(fields) == 5:
        user, conv = _count(fields[0], 1), _count(fields[1], 1)
        read_seq, unread, origin = _count(fields[2], 0), _count(fields[3], 0), fields[4]
        if origin is not None and not (isinstance(origin, str) and origin and origin.isascii()):
            raise WireError("bad_origin")
        return ReadMarker(user, ReadState(conv, read_seq, unread), origin)
    if kind == END_SESSIONS and type(kind) is int and len(fields) == 3:
        reason, tokens, user = fields
        if not isinstance(reason, str):
            raise WireError("unknown_reason")
        try:
            why = SessionEnd(reason)
        except ValueError:
            raise WireError("unknown_reason") from None
        if not isinstance(tokens, list) or not all(
            isinstance(token, bytes) and len(token) == TOKEN_HASH_BYTES for token in tokens
        ):
            raise WireError("bad_token_hash")
        user_id = None if user is None else _count(user, 1)
        if not tokens and user_id is None:
            raise WireError("nobody")
        return EndSessions(why, tuple(tokens), user_id)
    raise WireError("unknown_kind")


def _count(value: object, low: int) -> int:
    if type(value) is not int or not low <= value <= MAX_INT:
        raise WireError("out_of_range")
    return value
