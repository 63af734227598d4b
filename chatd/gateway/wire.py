"""The codec of ``/v1/ws``: limits, close codes, typed field access, and the server's frames.

No I/O here (the ``websockets`` habit).  The requests themselves — one class per operation,
which reads and validates its own fields — are declared by capability in
:mod:`chatd.gateway.ops`; :mod:`chatd.gateway.protocol` puts the two together.

Frames are msgpack maps.  Requests: ``{"op": str, "rid": int, ...}``; unknown fields are
refused (a typo must not be silently ignored).  Integers are 0 … 2**53-1, so that any
client language can hold them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any

import msgpack

from chatd.core.conversations import (
    BAD_ATTACHMENTS,
    MALFORMED,
    MAX_ATTACHMENTS,
    MAX_CLIENT_MSG_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MESSAGE_EMPTY,
    MESSAGE_NOT_TEXT,
    MESSAGE_TOO_LONG,
    NAME_EMPTY,
    NAME_NOT_TEXT,
    NAME_TOO_LONG,
    TOO_MANY_ATTACHMENTS,
)
from chatd.core.errors import (
    ChatdError,
    ClientError,
    ValidationError,
)
from chatd.core.events import Event, MessageTag
from chatd.core.ids import ConvId, parse_attachment_id
from chatd.core.records import ChainView
from chatd.i18n import N_, Language

PROTOCOL_VERSION = 1
MAX_INT = 2**53 - 1
MAX_TERMS_CHARS = 64
MAX_LANGUAGE_TAG_CHARS = 35  # BCP 47's longest common tags; only fr and en are used
HISTORY_DEFAULT = 50
HISTORY_MAX = 100
MAX_SYNC_CONVS = 5000
MAX_USER_LOOKUP = 200
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
BAD_TAG = N_("A message can only be marked as important or as a question.")


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
    TOO_MANY_SESSIONS = 4008  # the user's live connections are at CHATD_SESSIONS_PER_USER

    @property
    def reason(self) -> str:
        return self.name.lower()


class BadRequest(Exception):
    """A frame that could not become a request: answer ``error`` with this rid."""

    def __init__(self, rid: int | None, error: ClientError) -> None:
        super().__init__(error.code)
        self.rid = rid
        self.error = error


# ----------------------------------------------------------------------------- decoding

_MISSING: Any = object()


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Fields:
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
        if not is_int(value) or not minimum <= value <= maximum:
            raise refused(name, invalid, min=minimum, max=maximum)
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
            raise refused(name, invalid)
        if len(value) < min_chars:
            raise refused(name, empty or invalid, min=min_chars)
        if len(value) > max_chars:
            raise refused(name, too_long or invalid, max=said_max or max_chars)
        return value

    def tag(self, name: str) -> MessageTag | None:
        value = self._get(name, None)
        if value is None:
            return None
        if not isinstance(value, str) or value not in MessageTag.__members__.values():
            raise refused(name, BAD_TAG)
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
        if not isinstance(value, list) or not all(is_int(v) and 1 <= v <= MAX_INT for v in value):
            raise refused(name, invalid)
        if not min_items <= len(value) <= max_items:
            sentence = too_few if len(value) < min_items else too_many
            raise refused(name, sentence or invalid, min=min_items, max=max_items)
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
            raise refused(name, invalid, max=max_items)
        return tuple(value)

    def attachment_ids(self, name: str) -> tuple[int, ...]:
        """An optional list of distinct attachment ids, each 16 hex digits (absent: empty)."""
        value = self._get(name, [])
        if isinstance(value, list) and len(value) > MAX_ATTACHMENTS:
            raise refused(name, TOO_MANY_ATTACHMENTS, max=MAX_ATTACHMENTS)
        ids = [parse_attachment_id(v) for v in value] if isinstance(value, list) else [None]
        if None in ids or len(set(ids)) != len(ids):
            raise refused(name, BAD_ATTACHMENTS)
        return tuple(i for i in ids if i is not None)

    def positions(
        self, name: str, *, max_items: int, invalid: str | None = None
    ) -> tuple[tuple[int, int, bytes | None], ...]:
        """``sync``'s list of ``[conv, seq]`` or ``[conv, seq, "hash"]`` (the chain hash the
        client holds at ``seq``: 64 lower-case hex digits), one per conversation."""
        value = self._get(name, [])
        ok = isinstance(value, list) and len(value) <= max_items
        items: list[tuple[int, int, bytes | None]] = []
        for item in value if ok else ():
            if (
                not isinstance(item, list)
                or len(item) not in (2, 3)
                or not is_int(item[0])
                or not is_int(item[1])
                or not 1 <= item[0] <= MAX_INT
                or not 0 <= item[1] <= MAX_INT
                or (len(item) == 3 and not is_chain_hash(item[2]))
            ):
                ok = False
                break
            items.append((item[0], item[1], bytes.fromhex(item[2]) if len(item) == 3 else None))
        if not ok or len({conv for conv, _, _ in items}) != len(items):
            raise refused(name, invalid, max=max_items)
        return tuple(items)

    def done(self) -> None:
        for key in self._obj:
            if key not in self._seen:
                shown = key[:32] if isinstance(key, str) else "?"
                raise ValidationError(UNKNOWN_FIELD, field=shown)


_HEX = frozenset("0123456789abcdef")


def is_chain_hash(value: object) -> bool:
    """A chain hash as the wire writes it: 64 lower-case hexadecimal digits (SHA-256)."""
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


def refused(name: str, sentence: str | None, **limits: int) -> ValidationError:
    """The refusal of field ``name``: its sentence, else the generic one."""
    return ValidationError(sentence or MALFORMED, field=name, **limits)


def client_msg_id(f: Fields) -> str:
    value: str = f.text("client_msg_id", max_chars=MAX_CLIENT_MSG_ID_CHARS)
    if not value.isprintable():
        raise refused("client_msg_id", None)
    return value


def conv_field(f: Fields) -> ConvId:
    return ConvId(f.integer("conv", minimum=1, invalid=BAD_CONVERSATION))


def message_text(f: Fields, *, with_attachments: bool) -> str | None:
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


def name_field(f: Fields) -> str:
    name: str = f.text(
        "name",
        max_chars=_MAX_NAME_INPUT,
        invalid=NAME_NOT_TEXT,
        empty=NAME_EMPTY,
        too_long=NAME_TOO_LONG,
        said_max=MAX_NAME_CHARS,
    )
    return name


# ----------------------------------------------------------------------------- encoding


def pack(obj: Mapping[str, Any]) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def event_map(event: Event) -> dict[str, Any]:
    """An event as the wire shows it: metadata, then the payload's fields.  ``hash`` and
    ``prev_hash`` (64 lower-case hex digits) are its chain link, for the client's rewind check
    (protocol §9.2); a record without them (built by hand, never by a store) goes without."""
    shown = {
        **event.payload,
        "conv": event.conv_id,
        "seq": event.seq,
        "kind": event.kind,
        "sender": event.sender,
        "ts": event.ts,
    }
    if event.hash:
        shown["hash"] = event.hash.hex()
        shown["prev_hash"] = event.prev_hash.hex()
    return shown


def chain_view_map(view: ChainView) -> dict[str, Any]:
    """One entry of ``sync``'s ``heads`` (protocol §9.2)."""
    return {
        "conv": view.conv_id,
        "seq": view.seq,
        "at": None if view.at is None else view.at.hex(),
        "head_seq": view.head_seq,
        "head": None if view.head is None else view.head.hex(),
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
