"""Checkpoint records and their replay, as plain code: what a forged, edited, removed or
reordered record looks like, and where a database departs from a map of heads."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.checkpoint_audit import DepartureKind, RawLine, audit_records, departures
from chatd.core.checkpoints import (
    NO_PREVIOUS,
    BadRecord,
    Checkpoint,
    Head,
    HeadMap,
    RecordKind,
    line_hash,
    parse_record,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
EPOCH = "ab" * 16


def h(n: int) -> bytes:
    return bytes([n]) * 32


def make_log(steps: list[dict[str, Head]], key: bytes = KEY) -> list[RawLine]:
    """A log whose first record is a base of ``steps[0]`` and the rest deltas."""
    lines: list[RawLine] = []
    heads = HeadMap()
    prev = NO_PREVIOUS
    for n, step in enumerate(steps, start=1):
        moved = heads.moved(step) if n > 1 else sorted(step.items())
        for chain, head in moved:
            heads.put(chain, head)
        record = Checkpoint(
            n=n,
            kind=RecordKind.BASE if n == 1 else RecordKind.DELTA,
            epoch=EPOCH,
            schema=10,
            at_ms=1000 * n,
            heads=tuple(heads.heads.items()) if n == 1 else tuple(moved),
            size=len(heads.heads),
            root=heads.root,
            prev=prev,
        ).signed("kid1", key)
        raw = record.line()
        lines.append(RawLine(raw, parse_record(raw)))
        prev = line_hash(raw)
    return lines


STEPS = [
    {"conv:1": Head(3, h(1)), "admin_audit": Head(1, h(9))},
    {"conv:1": Head(5, h(2)), "conv:2": Head(1, h(3))},
    {"conv:2": Head(4, h(4)), "admin_audit": Head(2, h(8))},
]


def keys(kid: str) -> bytes | None:
    return KEY if kid == "kid1" else None


def test_a_log_replays_to_its_last_heads() -> None:
    audit = audit_records(make_log(STEPS), keys)
    assert audit.ok, audit.problems
    assert audit.last is not None and audit.last.n == 3
    assert audit.heads.heads == {
        "conv:1": Head(5, h(2)),
        "admin_audit": Head(2, h(8)),
        "conv:2": Head(4, h(4)),
    }


def reasons(lines: list[RawLine]) -> list[str]:
    return [t.msgid for t in audit_records(lines, keys).problems]


def relined(record: Checkpoint) -> RawLine:
    raw = record.line()
    return RawLine(raw, parse_record(raw))


def test_an_edited_record_fails_its_mac() -> None:
    lines = make_log(STEPS)
    last = lines[-1].record
    assert last is not None
    forged = dataclasses.replace(last, at_ms=last.at_ms + 1)  # still its old MAC
    assert "wrong MAC" in reasons([*lines[:-1], relined(forged)])[0]


def test_a_record_made_without_the_key_fails() -> None:
    lines = make_log(STEPS, key=OTHER_KEY)
    assert "wrong MAC" in reasons(lines)[0]


def test_removed_reordered_or_relinked_records_break_the_chain() -> None:
    lines = make_log(STEPS)
    assert "does not follow" in reasons([lines[0], lines[2]])[0]
    assert "does not follow" in reasons([lines[0], lines[2], lines[1]])[0]
    # Re-signed with the key but linked to the wrong line: the link still gives it away.
    middle = lines[1].record
    assert middle is not None
    relinked = dataclasses.replace(middle, prev=NO_PREVIOUS).signed("kid1", KEY)
    assert "does not follow" in reasons([lines[0], relined(relinked), lines[2]])[0]


def test_heads_that_do_not_match_the_root_are_seen() -> None:
    lines = make_log(STEPS)
    middle = lines[1].record
    assert middle is not None
    dropped = dataclasses.replace(middle, heads=middle.heads[:1]).signed("kid1", KEY)
    assert "does not match the heads" in reasons([lines[0], relined(dropped)])[0]


def test_the_last_record_must_be_checkable() -> None:
    lines = make_log(STEPS)
    problems = audit_records(lines, lambda kid: None).problems
    assert len(problems) == 1 and "not in the key file" in problems[0].msgid


def test_a_line_that_is_not_a_record_is_named() -> None:
    lines = make_log(STEPS)
    garbage = RawLine(b"{not json", None, "not JSON")
    assert "line 2 is not a record" in str(audit_records([lines[0], garbage], keys).problems[0])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parsing_garbage_raises_only_bad_record(raw: bytes) -> None:
    with contextlib.suppress(BadRecord):
        parse_record(raw)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_parsing_a_record_with_one_field_spoiled(data: st.DataObject) -> None:
    line = make_log(STEPS)[1].raw
    doc = json.loads(line)
    field = data.draw(st.sampled_from(sorted(doc)))
    doc[field] = data.draw(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())))
    raw = json.dumps(doc).encode()
    try:
        record = parse_record(raw)
    except BadRecord:
        return
    # Parsed: then it is not the record that was signed, unless the value was unchanged.
    if record.line() != line:
        assert not record.mac_ok(KEY) or field == "v"


def test_departures_name_what_moved_back() -> None:
    checkpointed = {
        "conv:1": Head(5, h(1)),
        "conv:2": Head(3, h(2)),
        "conv:3": Head(2, h(3)),
        "conv:4": Head(7, h(4)),
        "admin_audit": Head(2, h(5)),
    }
    at = {"conv:1": h(1), "conv:3": h(99), "admin_audit": h(5)}  # conv:4's seq 7 is gone
    last = {"conv:1": 9, "conv:3": 4, "conv:4": 6, "admin_audit": 2}  # conv:2 vanished
    found = {d.chain: d.kind for d in departures(12, checkpointed, at, last)}
    assert found == {
        "conv:2": DepartureKind.VANISHED,
        "conv:3": DepartureKind.FORKED,
        "conv:4": DepartureKind.SHORTER,
    }


@pytest.mark.parametrize("kind", list(DepartureKind))
def test_every_departure_is_said(kind: DepartureKind) -> None:
    from chatd.core.checkpoint_audit import Departure

    for chain in ("conv:7", "admin_audit", "feed:1"):
        text = Departure(chain, 3, Head(5, h(1)), kind, 2).text()
        assert "3" in text.render("en") and text.render("fr")


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from([f"conv:{i}" for i in range(12)]), st.integers(1, 50)),
    st.dictionaries(st.sampled_from([f"conv:{i}" for i in range(16)]), st.integers(1, 50)),
)
def test_advancing_in_place_then_undoing_leaves_the_map_as_it_was(
    start: dict[str, int], current: dict[str, int]
) -> None:
    heads = HeadMap.of((c, Head(s, h(s))) for c, s in start.items())
    before = (dict(heads.heads), list(heads.heads), heads.root)
    moved = heads.moved({c: Head(s, h(s)) for c, s in current.items()})
    undo = heads.advance(moved)
    rebuilt = HeadMap.of(heads.heads.items())
    assert heads.root == rebuilt.root  # in place = from scratch
    assert all(heads.heads[c].seq >= s for c, s in start.items())  # never a step back
    undo()
    assert (dict(heads.heads), list(heads.heads), heads.root) == before
