"""The wire protocol of ``/v1/ws`` as plain code: frames in, typed requests out, and back.

No I/O here (the ``websockets`` habit: ``protocol.py`` vs ``asyncio/connection.py``).
:func:`decode_request` turns one binary frame into one frozen request, validating the type
and size of every field, or raises :class:`BadRequest` carrying the request id (when one
could be read) and a :class:`~chatd.core.errors.ClientError` with a stable code.  The
requests are declared by capability in :mod:`chatd.gateway.ops` (each reads its own fields);
the codec — limits, close codes, field access and the server's frames — is
:mod:`chatd.gateway.wire`.  ``docs/protocol.md`` is the reference for everything here.
"""

from __future__ import annotations

from typing import Any

import msgpack

from chatd.core.errors import ClientError, MalformedFrameError, UnknownOpError
from chatd.gateway.ops import REQUESTS
from chatd.gateway.ops.base import Request
from chatd.gateway.ops.conversations import Add, Create, History, Leave, Rename, Send, Sync
from chatd.gateway.ops.directory import Users
from chatd.gateway.ops.inbox import ListConversations, MarkRead
from chatd.gateway.ops.session import AcceptTerms, Auth, Ping, SetLanguage
from chatd.gateway.ops.sessions import ListSessions, RevokeOtherSessions, RevokeSession
from chatd.gateway.wire import (
    HISTORY_DEFAULT,
    HISTORY_MAX,
    MAX_INT,
    MAX_REPLY_BYTES,
    MAX_SYNC_CONVS,
    PROTOCOL_VERSION,
    BadRequest,
    CloseCode,
    Fields,
    chain_view_map,
    encode_archived,
    encode_error,
    encode_event,
    encode_ok,
    encode_state,
    event_map,
    fit_events,
    is_int,
    pack,
    refused,
)

__all__ = [
    "HISTORY_DEFAULT",
    "HISTORY_MAX",
    "MAX_INT",
    "MAX_REPLY_BYTES",
    "MAX_SYNC_CONVS",
    "OPS",
    "PROTOCOL_VERSION",
    "AcceptTerms",
    "Add",
    "Auth",
    "BadRequest",
    "CloseCode",
    "Create",
    "History",
    "Leave",
    "ListConversations",
    "ListSessions",
    "MarkRead",
    "Ping",
    "Rename",
    "Request",
    "RevokeOtherSessions",
    "RevokeSession",
    "Send",
    "SetLanguage",
    "Sync",
    "Users",
    "chain_view_map",
    "decode_request",
    "encode_archived",
    "encode_error",
    "encode_event",
    "encode_ok",
    "encode_state",
    "event_map",
    "fit_events",
    "pack",
]

OPS = frozenset(REQUESTS)


def decode_request(data: bytes) -> Request:
    """One binary frame → one request, or :class:`BadRequest`."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises ValueError subclasses, UnicodeDecodeError, …
        raise BadRequest(None, MalformedFrameError()) from None
    if not isinstance(obj, dict):
        raise BadRequest(None, MalformedFrameError())
    rid: Any = obj.get("rid")
    if not is_int(rid) or not 0 <= rid <= MAX_INT:
        raise BadRequest(None, refused("rid", None))
    op = obj.get("op")
    if not isinstance(op, str):
        raise BadRequest(rid, refused("op", None))
    request_type = REQUESTS.get(op)
    if request_type is None:
        raise BadRequest(rid, UnknownOpError())
    fields = Fields(obj)
    try:
        request = request_type.parse(rid, fields)
        fields.done()
    except ClientError as exc:
        raise BadRequest(rid, exc) from None
    return request
