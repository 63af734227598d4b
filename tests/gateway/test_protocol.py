"""The pure protocol layer: strict decoding of requests, encoding of replies and events."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.errors import UserNotFound, ValidationError
from chatd.core.events import Event, MessageTag
from chatd.gateway import protocol as p


def frame(**fields: Any) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def decode(**fields: Any) -> p.Request:
    return p.decode_request(frame(**fields))


def bad(data: bytes) -> p.BadRequest:
    with pytest.raises(p.BadRequest) as info:
        p.decode_request(data)
    return info.value


def test_every_op_decodes_to_its_typed_request() -> None:
    assert decode(op="auth", rid=1, token="t") == p.Auth(1, "t")
    assert decode(op="ping", rid=0) == p.Ping(0)
    assert decode(op="accept_terms", rid=2, version="v1") == p.AcceptTerms(2, "v1")
    assert decode(
        op="create", rid=3, client_msg_id="c", members=[2, 3], name="n", text="t", tag="question"
    ) == p.Create(3, "c", (2, 3), "n", "t", MessageTag.QUESTION)
    assert decode(op="create", rid=3, client_msg_id="c", members=[2], name="n") == p.Create(
        3, "c", (2,), "n", None, None
    )
    assert decode(op="send", rid=4, client_msg_id="c", conv=9, text="hi", tag=None) == p.Send(
        4, "c", 9, "hi", None
    )
    assert decode(op="add", rid=5, client_msg_id="c", conv=9, user=7) == p.Add(5, "c", 9, 7)
    assert decode(op="leave", rid=6, client_msg_id="c", conv=9) == p.Leave(6, "c", 9)
    assert decode(op="rename", rid=7, client_msg_id="c", conv=9, name="x") == p.Rename(
        7, "c", 9, "x"
    )
    assert decode(op="list", rid=8) == p.ListConversations(8)
    assert decode(op="history", rid=9, conv=1) == p.History(9, 1, None, None, p.HISTORY_DEFAULT)
    assert decode(op="history", rid=9, conv=1, before=5, limit=3) == p.History(9, 1, 5, None, 3)
    assert decode(op="history", rid=9, conv=1, after=0) == p.History(9, 1, None, 0, 50)
    assert decode(op="read", rid=10, conv=1, seq=0) == p.MarkRead(10, 1, 0)
    assert decode(op="sync", rid=11, convs=[[1, 0], [2, 5]]) == p.Sync(11, ((1, 0), (2, 5)))
    assert decode(op="sync", rid=11, epoch="0a" * 16) == p.Sync(11, (), "0a" * 16)
    assert decode(op="sync", rid=11) == p.Sync(11, ())
    assert decode(op="users", rid=12, ids=[1, 2]) == p.Users(12, (1, 2))
    assert decode(op="auth", rid=13, token="t", lang="en-GB") == p.Auth(13, "t", "en")
    assert decode(op="set_language", rid=14, language="fr") == p.SetLanguage(14, "fr")
    assert decode(op="set_language", rid=15, language=None) == p.SetLanguage(15, None)
    assert decode(op="sessions", rid=16) == p.ListSessions(16)
    assert decode(op="revoke_session", rid=17, session="0a1b2c3d") == p.RevokeSession(
        17, "0a1b2c3d"
    )
    assert decode(op="revoke_other_sessions", rid=18) == p.RevokeOtherSessions(18)
    expected = {"auth", "ping", "accept_terms", "create", "send", "add", "leave", "rename"}
    expected |= {"sessions", "revoke_session", "revoke_other_sessions"}
    assert expected | {"list", "history", "read", "sync", "users", "set_language"} == p.OPS


@pytest.mark.parametrize("session", ["", "0a1b2c3", "0a1b2c3d4", "0A1B2C3D", "0a1b2c3g", 12345678])
def test_a_session_id_is_eight_lower_case_hex_digits(session: object) -> None:
    error = bad(frame(op="revoke_session", rid=1, session=session)).error
    assert (error.code, error.details["field"]) == ("invalid_request", "session")


@pytest.mark.parametrize(
    ("data", "rid", "code", "field"),
    [
        (b"\xc1", None, "malformed_frame", None),
        (frame(op="ping", rid=1) + b"x", None, "malformed_frame", None),
        (msgpack.packb("ping"), None, "malformed_frame", None),
        (frame(op="ping"), None, "invalid_request", "rid"),
        (frame(op="ping", rid=False), None, "invalid_request", "rid"),
        (frame(op="ping", rid=2**53), None, "invalid_request", "rid"),
        (frame(op=None, rid=1), 1, "invalid_request", "op"),
        (frame(op="nope", rid=1), 1, "unknown_op", None),
        (frame(op="ping", rid=1, x=1), 1, "invalid_request", "x"),
        (
            frame(op="send", rid=1, conv=0, text="t", client_msg_id="c"),
            1,
            "invalid_request",
            "conv",
        ),
        (
            frame(op="send", rid=1, conv=True, text="t", client_msg_id="c"),
            1,
            "invalid_request",
            "conv",
        ),
        (
            frame(op="send", rid=1, conv=1.0, text="t", client_msg_id="c"),
            1,
            "invalid_request",
            "conv",
        ),
        (frame(op="send", rid=1, conv=1, text="", client_msg_id="c"), 1, "invalid_request", "text"),
        (
            frame(op="send", rid=1, conv=1, text="t", client_msg_id=""),
            1,
            "invalid_request",
            "client_msg_id",
        ),
        (
            frame(op="send", rid=1, conv=1, text="t", client_msg_id="c", tag="urgent"),
            1,
            "invalid_request",
            "tag",
        ),
        (
            frame(op="create", rid=1, client_msg_id="c", members=[], name="n"),
            1,
            "invalid_request",
            "members",
        ),
        (
            frame(op="create", rid=1, client_msg_id="c", members=[0], name="n"),
            1,
            "invalid_request",
            "members",
        ),
        (
            frame(op="create", rid=1, client_msg_id="c", members=[True], name="n"),
            1,
            "invalid_request",
            "members",
        ),
        (
            frame(op="create", rid=1, client_msg_id="c", members=[2], name="n" * 801),
            1,
            "invalid_request",
            "name",
        ),
        (frame(op="history", rid=1, conv=1, limit=0), 1, "invalid_request", "limit"),
        (frame(op="history", rid=1, conv=1, before=0), 1, "invalid_request", "before"),
        (frame(op="sync", rid=1, convs=[[1, 1]] * 2), 1, "invalid_request", "convs"),
        (frame(op="sync", rid=1, convs=[[0, 1]]), 1, "invalid_request", "convs"),
        (frame(op="sync", rid=1, convs="all"), 1, "invalid_request", "convs"),
        (frame(op="users", rid=1, ids=list(range(1, 300))), 1, "invalid_request", "ids"),
        (frame(op="auth", rid=1, token="t" * 129), 1, "invalid_request", "token"),
    ],
)
def test_invalid_frames_name_their_problem(
    data: bytes, rid: int | None, code: str, field: str | None
) -> None:
    error = bad(data)
    assert (error.rid, error.error.code) == (rid, code)
    assert error.error.details.get("field") == field


def test_encodings() -> None:
    event = Event(3, 7, "message", 2, 1234, {"text": "hi", "tag": None, "attachments": []})
    assert msgpack.unpackb(p.encode_event(event)) == {
        "op": "event",
        "conv": 3,
        "seq": 7,
        "kind": "message",
        "sender": 2,
        "ts": 1234,
        "text": "hi",
        "tag": None,
        "attachments": [],
    }
    assert msgpack.unpackb(p.encode_ok(5, conv=1)) == {"op": "ok", "rid": 5, "conv": 1}
    error = msgpack.unpackb(p.encode_error(5, UserNotFound(user=9, secret=object()), "en"))
    assert error == {
        "op": "error",
        "rid": 5,
        "code": "user_not_found",
        "message": "No such user.",
        "details": {"user": 9},  # only plain values travel
    }
    in_french = msgpack.unpackb(p.encode_error(5, UserNotFound(user=9), "fr"))
    assert in_french == {**error, "message": "Cet utilisateur n'existe pas."}
    assert "details" not in msgpack.unpackb(p.encode_error(None, ValidationError(), "fr"))
    assert msgpack.unpackb(p.encode_archived(3, 50)) == {
        "op": "archived",
        "conv": 3,
        "window_start": 50,
    }
    assert p.CloseCode.SLOW_CONSUMER.reason == "slow_consumer"


def test_fit_events_keeps_replies_under_the_budget() -> None:
    events = [Event(1, s, "message", 1, 0, {"text": "x" * 1000}) for s in range(1, 50)]
    kept = p.fit_events(events, budget=10_000)
    assert 5 <= len(kept) < 10 and [e["seq"] for e in kept] == list(range(1, len(kept) + 1))
    assert len(p.fit_events(events[:1], budget=10)) == 1  # one event always fits


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        p.decode_request(data)
    except p.BadRequest as error:
        assert error.error.code in {"malformed_frame", "invalid_request", "unknown_op"}


@settings(max_examples=400, deadline=None)
@given(
    op=st.sampled_from(sorted(p.OPS)),
    rid=st.integers(min_value=0, max_value=2**53 - 1),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "token",
                "version",
                "client_msg_id",
                "members",
                "name",
                "text",
                "tag",
                "conv",
                "user",
                "before",
                "after",
                "limit",
                "seq",
                "convs",
                "ids",
                "other",
            ]
        ),
        json_like,
        max_size=6,
    ),
)
def test_arbitrary_fields_give_a_request_or_a_coded_error(
    op: str, rid: int, fields: dict[str, Any]
) -> None:
    data = msgpack.packb({"op": op, "rid": rid, **fields}, use_bin_type=True)
    try:
        request = p.decode_request(data)
    except p.BadRequest as error:
        assert error.rid == rid
        assert error.error.code == "invalid_request"
    else:
        assert request.rid == rid
