"""The bytes between nodes: a round trip keeps every publication (a committed batch as a
pointer), no content rides along, and garbage raises WireError and nothing else."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.broker.base import Committed, EndSessions, Publication, ReadMarker, SessionEnd
from chatd.broker.wire import VERSION, Received, WireError, decode, encode
from chatd.core.events import Event
from chatd.core.records import ReadState

ids = st.integers(1, 2**63 - 1)
counts = st.integers(0, 2**63 - 1)
digests = st.binary(min_size=32, max_size=32)
ascii_text = st.characters(min_codepoint=0, max_codepoint=127)
nodes = st.text(ascii_text, min_size=1, max_size=64)  # node and session ids are ASCII


@st.composite
def pointers(draw: st.DrawFn) -> Committed:
    first = draw(ids)
    last = draw(st.integers(first, 2**63 - 1))
    return Committed.pointer(draw(ids), first, last)


read_markers = st.builds(
    ReadMarker,
    ids,
    st.builds(ReadState, ids, counts, counts),
    st.none() | st.text(ascii_text, min_size=1, max_size=128),
)


@st.composite
def session_ends(draw: st.DrawFn) -> EndSessions:
    tokens = tuple(draw(st.lists(digests, max_size=20)))
    user = draw(ids) if not tokens else draw(st.none() | ids)
    return EndSessions(draw(st.sampled_from(SessionEnd)), tokens, user)


publications = pointers() | read_markers | session_ends()


@given(publications, nodes)
def test_every_publication_survives_the_round_trip(publication: Publication, node: str) -> None:
    data = encode(publication, node)
    assert data is not None
    assert decode(data) == Received(node, publication)


def test_ids_that_are_not_ascii_are_refused_on_both_sides() -> None:
    """Regression (found by the round trip above): a node id of 64 characters of several
    bytes each passed the encoder and broke the decoder's byte limit."""
    with pytest.raises(ValueError):
        encode(Committed.pointer(1, 1, 1), "nœud")
    with pytest.raises(ValueError):
        encode(ReadMarker(1, ReadState(1, 1, 0), origin="nœud.1"), "n")
    with pytest.raises(WireError):
        decode(msgpack.packb([VERSION, "nœud", 1, 1, 1, 1]))


def test_a_committed_batch_travels_as_a_pointer_without_its_content() -> None:
    secret = "Mme Dupont, HbA1c 9,2 %"
    events = tuple(
        Event(conv_id=12, seq=seq, kind="message", sender=5, ts=1, payload={"text": secret})
        for seq in (4, 5, 6)
    )
    data = encode(Committed(12, events), "node-a")
    assert data is not None
    assert secret.encode() not in data and b"message" not in data
    assert decode(data) == Received("node-a", Committed.pointer(12, 4, 6))
    assert decode(data).publication.span == (4, 6)  # type: ignore[union-attr]


def test_an_empty_batch_sends_nothing() -> None:
    assert encode(Committed(3, ()), "n") is None


@given(st.binary(max_size=300))
def test_garbage_raises_wire_error_and_nothing_else(data: bytes) -> None:
    with contextlib.suppress(WireError):
        decode(data)


valid_looking = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=70)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=20,
)


@given(st.lists(valid_looking, max_size=8), st.sampled_from([None, VERSION]))
def test_well_formed_msgpack_of_the_wrong_shape_raises_wire_error(
    fields: list[object], version: int | None
) -> None:
    message = [version, "node", *fields] if version is not None else fields
    try:
        received = decode(msgpack.packb(message, use_bin_type=True))
    except WireError:
        return
    again = encode(received.publication, received.node_id)  # what decodes is what we send
    assert again is not None and decode(again) == received


@pytest.mark.parametrize(
    "message",
    [
        [VERSION + 1, "n", 1, 1, 1, 1],  # a later version
        [VERSION, "", 1, 1, 1, 1],  # no node
        [VERSION, "n", 1, 1, 3, 2],  # an empty range
        [VERSION, "n", 1, 1, 0, 2],  # seq 0
        [VERSION, "n", 1, True, 1, 2],  # a boolean is not an id
        [VERSION, "n", 3, "logged_out", [b"short"], None],  # not a digest
        [VERSION, "n", 3, "logged_out", [], None],  # nobody
        [VERSION, "n", 3, "exploded", [], 4],  # an unknown reason
        [VERSION, "n", 2, 1, 1, 1, 0, ""],  # an empty origin
        [VERSION, "n", 9],  # an unknown kind
    ],
)
def test_each_malformed_field_is_refused(message: list[object]) -> None:
    with pytest.raises(WireError):
        decode(msgpack.packb(message, use_bin_type=True))
