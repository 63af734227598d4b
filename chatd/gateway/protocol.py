"""The wire protocol of ``/v1/ws`` as plain code: frames in, typed requests out, and back.

No I/O here (the ``websockets`` habit: ``protocol.py`` vs ``asyncio/connection.py``).
:func:`decode_request` turns one binary frame into one frozen request dataclass, validating
the type and size of every field, or raises :class:`BadRequest` carrying the request id (when
one could be read) and a :class:`~chatd.core.errors.ClientError` with a stable code.  The
``encode_*`` functions build the server's frames.  ``docs/protocol.md`` is the reference for
everything here.

Frames are msgpack maps.  Requests: ``{"op": str, "rid": int, ...}``; unknown fields are
refused (a typo must not be silently ignored).  Integers are 0 … 2**53-1, so that any
client language can hold them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from chatd.core.conversations import (
    BAD_ATTACHMENTS,
    MALFORMED,
    MAX_ATTACHMENTS,
    MAX_CLIENT_MSG_ID_CHARS,
    MAX_MEMBERS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MESSAGE_EMPTY,
    MESSAGE_NOT_TEXT,
    MESSAGE_TOO_LONG,
    NAME_EMPTY,
    NAME_NOT_TEXT,
    NAME_TOO_LONG,
    NO_OTHER_MEMBER,
    TOO_MANY_ATTACHMENTS,
    TOO_MANY_MEMBERS,
)
from chatd.core.errors import (
    ChatdError,
    ClientError,
    MalformedFrameError,
    UnknownOpError,
    ValidationError,
)
from chatd.core.events import Event, MessageTag
from chatd.core.ids import parse_attachment_id
from chatd.i18n import N_, Language, language

PROTOCOL_VERSION = 1
MAX_INT = 2**53 - 1
MAX_TOKEN_CHARS = 128
MAX_TERMS_CHARS = 64
MAX_LANGUAGE_TAG_CHARS = 35  # BCP 47's longest common tags; only fr and en are used
HISTORY_DEFAULT = 50
HISTORY_MAX = 100
MAX_SYNC_CONVS = 5000
MAX_USER_LOOKUP = 200
MAX_LOGIN_CHARS = 64  # as chatd.services.auth (not imported: the protocol stays free of services)
MAX_REPLY_BYTES = 1024 * 1024  # history replies are cut (has_more) to stay under this
# Raw sizes accepted before the rules normalise and check the exact limits.
_MAX_NAME_INPUT = MAX_NAME_CHARS * 4

# What a person is told about a field their client sent wrong (chatd.core.conversations has the
# message's and the conversation's); MALFORMED for what only a program gets wrong.
MISSING_FIELD = N_("The request is malformed (field {field} is missing).")
UNKNOWN_FIELD = N_("The request is malformed (unknown field {field}).")
BAD_CONVERSATION = N_("This conversation number is not valid.")
BAD_USER = N_("This user number is not valid.")
BAD_SEQ = N_("This message number is not valid.")
BAD_MEMBERS = N_("The list of participants is not valid.")
BAD_TAG = N_("A message can only be marked as important or as a question.")
BAD_USER_IDS = N_("The list of users to look up is not valid.")
BAD_LOGINS = N_("The list of logins to look up is not valid (at most {max}).")
LOOKUP_COUNT = N_("Look up from {min} to {max} users at a time.")
BAD_SYNC = N_("The list of conversations to bring up to date is not valid (at most {max}).")
BAD_TERMS_VERSION = N_("This version of the terms of use is not valid.")


class CloseCode(IntEnum):
    """WebSocket close codes the server uses; the close reason is the lower-case name."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down: reconnect with backoff
    UNSUPPORTED_DATA = 1003  # a text frame: this protocol is binary msgpack only
    FRAME_TOO_LARGE = 1009  # sent by the WebSocket layer itself
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # sent by the HTTP server on restart
    AUTH_TIMEOUT = 4000
    UNAUTHENTICATED = 4001
    TOKEN_EXPIRED = 4002
    LOGGED_OUT = 4003
    USER_DISABLED = 4004
    SLOW_CONSUMER = 4005
    IDLE_TIMEOUT = 4006
    RATE_LIMITED = 4007

    @property
    def reason(self) -> str:
        return self.name.lower()


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Auth:
    rid: int
    token: str
    lang: Language | None = None  # the client's language, if chatd speaks it


@dataclass(frozen=True, slots=True)
class SetLanguage:
    rid: int
    language: Language | None  # None: forget the account's choice


@dataclass(frozen=True, slots=True)
class Ping:
    rid: int


@dataclass(frozen=True, slots=True)
class AcceptTerms:
    rid: int
    version: str


@dataclass(frozen=True, slots=True)
class Create:
    rid: int
    client_msg_id: str
    members: tuple[int, ...]
    name: str
    text: str | None
    tag: MessageTag | None
    attachments: tuple[int, ...] = ()  # uploaded attachment ids, for the first message


@dataclass(frozen=True, slots=True)
class Send:
    rid: int
    client_msg_id: str
    conv: int
    text: str
    tag: MessageTag | None
    attachments: tuple[int, ...] = ()  # uploaded attachment ids (docs: Attachments)


@dataclass(frozen=True, slots=True)
class Add:
    rid: int
    client_msg_id: str
    conv: int
    user: int


@dataclass(frozen=True, slots=True)
class Leave:
    rid: int
    client_msg_id: str
    conv: int


@dataclass(frozen=True, slots=True)
class Rename:
    rid: int
    client_msg_id: str
    conv: int
    name: str


@dataclass(frozen=True, slots=True)
class ListConversations:
    rid: int


@dataclass(frozen=True, slots=True)
class History:
    rid: int
    conv: int
    before: int | None
    after: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class MarkRead:
    rid: int
    conv: int
    seq: int


@dataclass(frozen=True, slots=True)
class Sync:
    rid: int
    convs: tuple[tuple[int, int], ...]  # (conv, last seq the client holds)


@dataclass(frozen=True, slots=True)
class Users:
    rid: int
    ids: tuple[int, ...]
    logins: tuple[str, ...] = ()  # look-up by login name: how a client turns "p.martin" into an id


Request = (
    Auth
    | Ping
    | AcceptTerms
    | Create
    | Send
    | Add
    | Leave
    | Rename
    | ListConversations
    | History
    | MarkRead
    | Sync
    | Users
    | SetLanguage
)
MUTATIONS = (Create, Send, Add, Leave, Rename)


class BadRequest(Exception):
    """A frame that could not become a request: answer ``error`` with this rid."""

    def __init__(self, rid: int | None, error: ClientError) -> None:
        super().__init__(error.code)
        self.rid = rid
        self.error = error


# ----------------------------------------------------------------------------- decoding

_MISSING: Any = object()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Fields:
    """Typed access to a request map; remembers which keys were read.

    Each validator refuses a bad value with a :class:`~chatd.core.errors.ValidationError` whose
    sentence is the one its caller gave for that field, written for the person using the
    client (``too_long=MESSAGE_TOO_LONG`` → "The message is over 20,000 characters."), and
    ``field=`` the field's name in the details.  A field a person cannot get wrong — only a
    client program can — falls back to :data:`MALFORMED`.  Sentences are message ids marked
    with ``N_``; ``{min}``/``{max}`` are filled with the validator's limits."""

    def __init__(self, obj: Mapping[Any, Any]) -> None:
        self._obj = obj
        self._seen = {"op", "rid"}

    def _get(self, name: str, default: Any, missing: str | None = None) -> Any:
        self._seen.add(name)
        value = self._obj.get(name, _MISSING)
        if value is _MISSING or (value is None and default is None):
            if default is _MISSING:
                raise ValidationError(missing or MISSING_FIELD, field=name)
            return default
        return value

    def integer(
        self,
        name: str,
        *,
        minimum: int = 0,
        default: Any = _MISSING,
        maximum: int = MAX_INT,
        invalid: str | None = None,
    ) -> Any:
        """A whole number from ``minimum`` to ``maximum``; ``invalid`` says otherwise."""
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not _is_int(value) or not minimum <= value <= maximum:
            raise _refused(name, invalid, min=minimum, max=maximum)
        return value

    def text(
        self,
        name: str,
        *,
        max_chars: int,
        default: Any = _MISSING,
        min_chars: int = 1,
        invalid: str | None = None,
        empty: str | None = None,
        too_long: str | None = None,
        said_max: int | None = None,
    ) -> Any:
        """Text of ``min_chars`` to ``max_chars`` characters.  ``empty`` (also said when the
        field is absent and required) and ``too_long`` (``{max}``: ``said_max``, the limit a
        person is told, else ``max_chars``) say what is wrong; ``invalid`` anything else."""
        value = self._get(name, default, missing=empty)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise _refused(name, invalid)
        if len(value) < min_chars:
            raise _refused(name, empty or invalid, min=min_chars)
        if len(value) > max_chars:
            raise _refused(name, too_long or invalid, max=said_max or max_chars)
        return value

    def tag(self, name: str) -> MessageTag | None:
        value = self._get(name, None)
        if value is None:
            return None
        if not isinstance(value, str) or value not in MessageTag.__members__.values():
            raise _refused(name, BAD_TAG)
        return MessageTag(value)

    def ints(
        self,
        name: str,
        *,
        min_items: int,
        max_items: int,
        optional: bool = False,
        invalid: str | None = None,
        too_few: str | None = None,
        too_many: str | None = None,
    ) -> tuple[int, ...]:
        """A list of ``min_items`` to ``max_items`` ids (whole numbers from 1)."""
        value = self._get(name, [] if optional else _MISSING, missing=too_few)
        if not isinstance(value, list) or not all(_is_int(v) and 1 <= v <= MAX_INT for v in value):
            raise _refused(name, invalid)
        if not min_items <= len(value) <= max_items:
            sentence = too_few if len(value) < min_items else too_many
            raise _refused(name, sentence or invalid, min=min_items, max=max_items)
        return tuple(value)

    def strings(
        self, name: str, *, max_items: int, max_chars: int, invalid: str | None = None
    ) -> tuple[str, ...]:
        """An optional list of short texts (absent: empty)."""
        value = self._get(name, [])
        if (
            not isinstance(value, list)
            or len(value) > max_items
            or not all(isinstance(v, str) and 1 <= len(v) <= max_chars for v in value)
        ):
            raise _refused(name, invalid, max=max_items)
        return tuple(value)

    def attachment_ids(self, name: str) -> tuple[int, ...]:
        """An optional list of distinct attachment ids, each 16 hex digits (absent: empty)."""
        value = self._get(name, [])
        if isinstance(value, list) and len(value) > MAX_ATTACHMENTS:
            raise _refused(name, TOO_MANY_ATTACHMENTS, max=MAX_ATTACHMENTS)
        ids = [parse_attachment_id(v) for v in value] if isinstance(value, list) else [None]
        if None in ids or len(set(ids)) != len(ids):
            raise _refused(name, BAD_ATTACHMENTS)
        return tuple(i for i in ids if i is not None)

    def pairs(
        self, name: str, *, max_items: int, invalid: str | None = None
    ) -> tuple[tuple[int, int], ...]:
        value = self._get(name, [])
        ok = isinstance(value, list) and len(value) <= max_items
        pairs: list[tuple[int, int]] = []
        for item in value if ok else ():
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not _is_int(item[0])
                or not _is_int(item[1])
                or not 1 <= item[0] <= MAX_INT
                or not 0 <= item[1] <= MAX_INT
            ):
                ok = False
                break
            pairs.append((item[0], item[1]))
        if not ok or len({conv for conv, _ in pairs}) != len(pairs):
            raise _refused(name, invalid, max=max_items)
        return tuple(pairs)

    def done(self) -> None:
        for key in self._obj:
            if key not in self._seen:
                shown = key[:32] if isinstance(key, str) else "?"
                raise ValidationError(UNKNOWN_FIELD, field=shown)


def _refused(name: str, sentence: str | None, **limits: int) -> ValidationError:
    """The refusal of field ``name``: its sentence, else the generic one."""
    return ValidationError(sentence or MALFORMED, field=name, **limits)


def _client_msg_id(f: _Fields) -> str:
    value: str = f.text("client_msg_id", max_chars=MAX_CLIENT_MSG_ID_CHARS)
    if not value.isprintable():
        raise _refused("client_msg_id", None)
    return value


def _conv(f: _Fields) -> int:
    conv: int = f.integer("conv", minimum=1, invalid=BAD_CONVERSATION)
    return conv


def _message_text(f: _Fields, *, with_attachments: bool) -> str | None:
    # With attachments the text may be empty (a message of files only).
    text: str | None = f.text(
        "text",
        max_chars=MAX_TEXT_CHARS,
        default=None,
        min_chars=0 if with_attachments else 1,
        invalid=MESSAGE_NOT_TEXT,
        empty=MESSAGE_EMPTY,
        too_long=MESSAGE_TOO_LONG,
    )
    return text


def _name(f: _Fields) -> str:
    name: str = f.text(
        "name",
        max_chars=_MAX_NAME_INPUT,
        invalid=NAME_NOT_TEXT,
        empty=NAME_EMPTY,
        too_long=NAME_TOO_LONG,
        said_max=MAX_NAME_CHARS,
    )
    return name


def _create(rid: int, f: _Fields) -> Create:
    client_msg_id = _client_msg_id(f)
    members = f.ints(
        "members",
        min_items=1,
        max_items=MAX_MEMBERS,
        invalid=BAD_MEMBERS,
        too_few=NO_OTHER_MEMBER,
        too_many=TOO_MANY_MEMBERS,
    )
    name = _name(f)
    attachments = f.attachment_ids("attachments")
    text = _message_text(f, with_attachments=bool(attachments))
    return Create(rid, client_msg_id, members, name, text, f.tag("tag"), attachments)


def _send(rid: int, f: _Fields) -> Send:
    client_msg_id = _client_msg_id(f)
    conv = _conv(f)
    attachments = f.attachment_ids("attachments")
    text = _message_text(f, with_attachments=bool(attachments))
    if text is None and not attachments:
        raise _refused("text", MESSAGE_EMPTY)
    return Send(rid, client_msg_id, conv, text or "", f.tag("tag"), attachments)


def _users(rid: int, f: _Fields) -> Users:
    ids = f.ints(
        "ids",
        min_items=0,
        max_items=MAX_USER_LOOKUP,
        optional=True,
        invalid=BAD_USER_IDS,
        too_many=N_("Look up at most {max} users at a time."),
    )
    logins = f.strings(
        "logins", max_items=MAX_USER_LOOKUP, max_chars=MAX_LOGIN_CHARS, invalid=BAD_LOGINS
    )
    if not 1 <= len(ids) + len(logins) <= MAX_USER_LOOKUP:
        raise _refused("ids", LOOKUP_COUNT, min=1, max=MAX_USER_LOOKUP)
    return Users(rid, ids, logins)


def _history(rid: int, f: _Fields) -> History:
    conv = _conv(f)
    before = f.integer("before", minimum=1, default=None, invalid=BAD_SEQ)
    after = f.integer("after", default=None, invalid=BAD_SEQ)
    if before is not None and after is not None:
        raise _refused("before", N_("Ask for the messages before a point or after it, not both."))
    limit = f.integer(
        "limit",
        minimum=1,
        maximum=HISTORY_MAX,
        default=HISTORY_DEFAULT,
        invalid=N_("The number of messages asked for must be from {min} to {max}."),
    )
    return History(rid, conv, before, after, limit)


def _set_language(rid: int, f: _Fields) -> SetLanguage:
    raw = f.text("language", max_chars=MAX_LANGUAGE_TAG_CHARS, default=None)
    chosen = language(raw)
    if raw is not None and (chosen is None or raw != chosen):
        raise ValidationError(
            N_(
                'The language must be "fr" (French) or "en" (English), or none to follow your'
                " application."
            ),
            field="language",
        )
    return SetLanguage(rid, chosen)


_PARSERS: dict[str, Any] = {
    "auth": lambda rid, f: Auth(
        rid,
        f.text("token", max_chars=MAX_TOKEN_CHARS),
        language(f.text("lang", max_chars=MAX_LANGUAGE_TAG_CHARS, default=None)),
    ),
    "set_language": _set_language,
    "ping": lambda rid, f: Ping(rid),
    "accept_terms": lambda rid, f: AcceptTerms(
        rid, f.text("version", max_chars=MAX_TERMS_CHARS, invalid=BAD_TERMS_VERSION)
    ),
    "create": _create,
    "send": _send,
    "add": lambda rid, f: Add(
        rid, _client_msg_id(f), _conv(f), f.integer("user", minimum=1, invalid=BAD_USER)
    ),
    "leave": lambda rid, f: Leave(rid, _client_msg_id(f), _conv(f)),
    "rename": lambda rid, f: Rename(rid, _client_msg_id(f), _conv(f), _name(f)),
    "list": lambda rid, f: ListConversations(rid),
    "history": _history,
    "read": lambda rid, f: MarkRead(rid, _conv(f), f.integer("seq", invalid=BAD_SEQ)),
    "sync": lambda rid, f: Sync(rid, f.pairs("convs", max_items=MAX_SYNC_CONVS, invalid=BAD_SYNC)),
    "users": _users,
}
OPS = frozenset(_PARSERS)


def decode_request(data: bytes) -> Request:
    """One binary frame → one request, or :class:`BadRequest`."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises ValueError subclasses, UnicodeDecodeError, …
        raise BadRequest(None, MalformedFrameError()) from None
    if not isinstance(obj, dict):
        raise BadRequest(None, MalformedFrameError())
    rid: Any = obj.get("rid")
    if not _is_int(rid) or not 0 <= rid <= MAX_INT:
        raise BadRequest(None, _refused("rid", None))
    op = obj.get("op")
    if not isinstance(op, str):
        raise BadRequest(rid, _refused("op", None))
    parser = _PARSERS.get(op)
    if parser is None:
        raise BadRequest(rid, UnknownOpError())
    fields = _Fields(obj)
    try:
        request: Request = parser(rid, fields)
        fields.done()
    except ClientError as exc:
        raise BadRequest(rid, exc) from None
    return request


# ----------------------------------------------------------------------------- encoding


def pack(obj: Mapping[str, Any]) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def event_map(event: Event) -> dict[str, Any]:
    """An event as the wire shows it: metadata, then the payload's fields."""
    return {
        **event.payload,
        "conv": event.conv_id,
        "seq": event.seq,
        "kind": event.kind,
        "sender": event.sender,
        "ts": event.ts,
    }


def encode_event(event: Event) -> bytes:
    return pack({"op": "event", **event_map(event)})


def encode_ok(rid: int, **fields: Any) -> bytes:
    return pack({"op": "ok", "rid": rid, **fields})


_DETAIL_TYPES = (int, str, bool, type(None))


def encode_error(rid: int | None, error: ChatdError, lang: Language) -> bytes:
    """An error reply, its sentence in ``lang``.  Pass only client errors, StoreClosedError,
    or a bare ChatdError (``internal_error``): their sentences are written for clients."""
    frame: dict[str, Any] = {
        "op": "error",
        "rid": rid,
        "code": error.code,
        "message": error.message_in(lang),
    }
    details = {k: v for k, v in error.details.items() if isinstance(v, _DETAIL_TYPES)}
    if details:
        frame["details"] = details
    return pack(frame)


def encode_archived(conv: int, window_start: int) -> bytes:
    return pack({"op": "archived", "conv": conv, "window_start": window_start})


def encode_state(conv: int, read_seq: int, unread: int) -> bytes:
    return pack({"op": "state", "conv": conv, "read_seq": read_seq, "unread": unread})


def fit_events(events: Iterable[Event], budget: int = MAX_REPLY_BYTES) -> list[dict[str, Any]]:
    """As many events (in the given order) as fit in ``budget`` bytes of msgpack."""
    out: list[dict[str, Any]] = []
    used = 0
    for event in events:
        item = event_map(event)
        used += len(pack(item))
        if used > budget and out:
            break
        out.append(item)
    return out
