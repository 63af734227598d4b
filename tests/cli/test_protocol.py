"""The client's protocol layer as plain code: URLs, frames in and out."""

from __future__ import annotations

import msgpack
import pytest

from clients.cli.errors import UsageError
from clients.cli.protocol import (
    FrameError,
    Hello,
    Push,
    Reply,
    create_fields,
    decode_frame,
    encode_request,
    normalise_server,
    sync_fields,
    ws_url,
)


def test_server_urls() -> None:
    assert normalise_server("Chat.Example.org:8470/") == "http://chat.example.org:8470"
    assert normalise_server(" https://chat.example.org ") == "https://chat.example.org"
    assert ws_url("http://127.0.0.1:8470") == "ws://127.0.0.1:8470/v1/ws"
    assert ws_url("https://chat.example.org/chatd") == "wss://chat.example.org/chatd/v1/ws"
    with pytest.raises(UsageError):
        normalise_server("ftp://chat.example.org")


def test_requests_are_msgpack_maps_with_op_and_rid() -> None:
    frame = msgpack.unpackb(encode_request("send", 7, {"conv": 3, "text": "é"}), raw=False)
    assert frame == {"op": "send", "rid": 7, "conv": 3, "text": "é"}
    assert create_fields([2], "Sujet", None, "important") == {"members": [2], "name": "Sujet"}
    assert create_fields([2], "S", "t", "question")["tag"] == "question"
    assert sync_fields({9: 4, 2: 0}) == {"convs": [[2, 0], [9, 4]]}
    assert sync_fields({9: 4}, "ab" * 16) == {"convs": [[9, 4]], "epoch": "ab" * 16}


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def test_frames_from_the_server() -> None:
    assert decode_frame(pack({"op": "ok", "rid": 3, "conv": 1})) == Reply("ok", 3, {"conv": 1})
    error = decode_frame(pack({"op": "error", "rid": None, "code": "malformed_frame"}))
    assert isinstance(error, Reply) and not error.ok and error.rid is None
    event = {"op": "event", "conv": 1, "seq": 2, "kind": "message"}
    assert decode_frame(pack(event)) == Push("event", {"conv": 1, "seq": 2, "kind": "message"})
    hello = decode_frame(pack({"op": "hello", "rid": 1, "terms_accepted": True, "limits": {}}))
    assert isinstance(hello, Reply)
    assert Hello.from_reply(hello).terms_accepted and Hello.from_reply(hello).idle_seconds == 300
    for bad in ("text", b"\xc1", pack([1]), pack({"rid": 1})):
        with pytest.raises(FrameError):
            decode_frame(bad)
