"""The chatd wire protocol as the client sees it: frames in, frames out, no I/O.

``docs/protocol.md`` is the reference.  Requests are msgpack maps ``{"op", "rid", ...}``;
what comes back is decoded into one of three shapes: a :class:`Reply` (``ok``, ``error`` or
``hello``, matched to its request by ``rid``) or a :class:`Push` (``event``, ``archived``,
``state``: no ``rid``).  Events stay plain dicts with the wire's field names, which is also
what ``--json`` prints.
"""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgpack

from clients.cli.errors import UsageError
from clients.cli.i18n import _

WS_PATH = "/v1/ws"
MAX_INT = 2**53 - 1
# Replies can be large (a ``list`` of many conversations): the protocol asks for >= 4 MiB.
MAX_FRAME_BYTES = 16 * 1024 * 1024
MUTATIONS = frozenset({"create", "send", "add", "leave", "rename"})
TAGS = ("important", "question")
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0

Event = dict[str, Any]  # a conversation event, exactly as on the wire (protocol §7)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to one request: ``op`` is ``ok``, ``error`` or ``hello``."""

    op: str
    rid: int | None
    fields: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.op != "error"


@dataclass(frozen=True, slots=True)
class Push:
    """A frame the server sends on its own: ``event``, ``archived`` or ``state``."""

    op: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hello:
    user: dict[str, Any]
    server_time: int
    session_expires_at: int
    terms_version: str
    terms_accepted: bool
    limits: dict[str, Any] = field(default_factory=dict)
    language: str | None = None  # the language the server speaks to this session
    epoch: str | None = None  # the history the seqs belong to (None: an older server)

    @property
    def account_language(self) -> str | None:
        """The account's own choice (``user.language``: "fr", "en", None), or ``""`` from a
        server that predates languages (then nothing is known)."""
        value = self.user.get("language", "")
        return value if value is None or isinstance(value, str) else ""

    @classmethod
    def from_reply(cls, reply: Reply) -> Hello:
        f = reply.fields
        return cls(
            user=dict(f.get("user") or {}),
            server_time=int(f.get("server_time") or 0),
            session_expires_at=int(f.get("session_expires_at") or 0),
            terms_version=str(f.get("terms_version") or ""),
            terms_accepted=bool(f.get("terms_accepted")),
            limits=dict(f.get("limits") or {}),
            language=str(f["language"]) if isinstance(f.get("language"), str) else None,
            epoch=str(f["epoch"]) if isinstance(f.get("epoch"), str) else None,
        )

    @property
    def idle_seconds(self) -> float:
        return float(self.limits.get("idle_seconds") or 300)


class FrameError(Exception):
    """The server sent something that is not a protocol frame."""


def ws_url(server: str) -> str:
    """``http(s)://host:port`` → ``ws(s)://host:port/v1/ws``."""
    parts = urlsplit(server)
    scheme = {"http": "ws", "https": "wss"}[parts.scheme]
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + WS_PATH, "", ""))


def normalise_server(url: str) -> str:
    """A server base URL as the client stores it: scheme, host and port, no trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            _("Not a server URL: {url} (expected http(s)://host:port).", url=repr(url))
        )
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def backoff_delay(attempt: int, cap: float = BACKOFF_CAP) -> float:
    """How long to wait before retry number ``attempt`` (protocol §9, step 5): exponential
    from 0.5 s up to ``cap``, each drawn in [half, full] so that clients dropped together
    do not come back together."""
    delay = min(cap, BACKOFF_BASE * 2.0 ** min(attempt, 32))
    return delay * (0.5 + random.random() / 2)


def new_client_msg_id() -> str:
    """A fresh id for one user action (protocol §5, idempotency)."""
    return uuid.uuid4().hex


class RequestIds:
    """Request ids for one client: a counter, unique per connection as the protocol needs."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def __next__(self) -> int:
        return next(self._next)


def encode_request(op: str, rid: int, fields: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb({"op": op, "rid": rid, **fields}, use_bin_type=True)
    return data


def decode_frame(data: bytes | str) -> Reply | Push:
    """One frame from the server."""
    if isinstance(data, str):
        raise FrameError(_("The server sent a text frame."))
    try:
        obj = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several ValueError subclasses
        raise FrameError(_("The server sent a frame that is not msgpack.")) from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("op"), str):
        raise FrameError(_("The server sent a frame that is not a map with an op."))
    op = obj.pop("op")
    if op in ("ok", "error", "hello"):
        rid = obj.pop("rid", None)
        return Reply(op, rid if isinstance(rid, int) else None, obj)
    return Push(op, obj)


# ----------------------------------------------------------------------------- requests


def line_breaks(text: str) -> str:
    """Windows (``\\r\\n``) and old Mac (``\\r``) line breaks as ``\\n``: the server refuses
    ``\\r`` in a text (a carriage return can forge a line on a terminal)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def send_fields(conv: int, text: str, tag: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"conv": conv, "text": line_breaks(text)}
    if tag is not None:
        fields["tag"] = tag
    return fields


def create_fields(
    members: list[int], name: str, text: str | None, tag: str | None = None
) -> dict[str, Any]:
    fields: dict[str, Any] = {"members": members, "name": name}
    if text is not None:
        fields["text"] = line_breaks(text)
        if tag is not None:
            fields["tag"] = tag
    return fields


def history_fields(
    conv: int, *, before: int | None = None, after: int | None = None, limit: int = 50
) -> dict[str, Any]:
    fields: dict[str, Any] = {"conv": conv, "limit": limit}
    if before is not None:
        fields["before"] = before
    if after is not None:
        fields["after"] = after
    return fields


def sync_fields(
    held: dict[int, int], epoch: str | None = None, entries: list[list[Any]] | None = None
) -> dict[str, Any]:
    """``sync``'s fields: ``entries`` if given (``[conv, seq]`` or ``[conv, seq, hash]``,
    :meth:`clients.cli.heads.Heads.sync_entries`), else the held seqs."""
    convs = entries if entries is not None else [[c, s] for c, s in sorted(held.items())]
    fields: dict[str, Any] = {"convs": convs}
    if epoch is not None:
        fields["epoch"] = epoch
    return fields
