"""The rewind check of :mod:`clients.cli.heads`, as plain code: the rules table by table, the
state through ``sync``/pushes/``list``, the heads file, and a property: against a server
simulated on random logs, a rewind is reported exactly when the server's log does not extend
the one the client saw."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clients.cli.heads import (
    Head,
    Heads,
    Rewind,
    Why,
    chain_hash,
    check_at,
    check_event,
    check_listed,
    decode,
    encode,
    merge,
)
from clients.cli.heads_file import HeadsFile
from clients.cli.i18n import VOICE
from clients.cli.state import Cursors

H = {n: f"{n:02x}" * 32 for n in range(1, 10)}  # distinct well-formed hashes
GENESIS = "0" * 64


@pytest.mark.parametrize(
    ("head", "seq", "digest", "prev", "expected"),
    [
        (None, 5, H[5], H[4], None),  # nothing held: nothing to check
        (Head(4, H[4]), 5, H[5], H[4], None),  # the next event follows the head
        (Head(4, H[4]), 5, H[5], H[3], Rewind(0, 4, Why.UNLINKED)),  # does not follow
        (Head(4, H[4]), 4, H[4], H[3], None),  # the head itself, again
        (Head(4, H[4]), 4, H[7], H[3], Rewind(0, 4, Why.DIFFERS)),  # another event at 4
        (Head(4, H[4]), 3, H[9], H[2], None),  # older: its hash is not held
        (Head(4, H[4]), 9, H[9], H[8], None),  # a gap (away, or the window moved)
    ],
)
def test_check_event(
    head: Head | None, seq: int, digest: str, prev: str, expected: Rewind | None
) -> None:
    assert check_event(head, seq, digest, prev) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (H[4], None),
        (H[5], Rewind(0, 4, Why.DIFFERS)),
        (None, Rewind(0, 4, Why.SHORTER)),
    ],
)
def test_check_at(at: str | None, expected: Rewind | None) -> None:
    assert check_at(Head(4, H[4]), at) == expected


@pytest.mark.parametrize(
    ("head_seq", "head", "expected"),
    [
        (4, H[4], None),
        (7, H[7], None),  # later: checked by sync, not here
        (4, H[5], Rewind(0, 4, Why.DIFFERS)),
        (3, H[3], Rewind(0, 4, Why.SHORTER)),
        (0, None, Rewind(0, 4, Why.SHORTER)),
        (4, None, None),  # a server that does not say
    ],
)
def test_check_listed(head_seq: int, head: str | None, expected: Rewind | None) -> None:
    assert check_listed(Head(4, H[4]), head_seq, head) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [("ab" * 32, True), ("AB" * 32, False), ("ab" * 31, False), (None, False), (12, False)],
)
def test_chain_hash(value: object, ok: bool) -> None:
    assert (chain_hash(value) is not None) is ok


def event(conv: int, seq: int, digest: str, prev: str) -> dict[str, Any]:
    return {"conv": conv, "seq": seq, "kind": "message", "hash": digest, "prev_hash": prev}


def test_pushes_move_the_head_and_a_fork_is_said_once() -> None:
    heads = Heads("e" * 32)
    assert heads.on_event(event(7, 1, H[1], GENESIS)) is None
    assert heads.on_event(event(7, 2, H[2], H[1])) is None
    assert heads.held == {7: Head(2, H[2])}
    assert heads.on_event({"conv": 7, "seq": 3}) is None  # no hashes (an older server)
    assert heads.on_event(event(7, 3, H[3], H[9])) == Rewind(7, 2, Why.UNLINKED)
    assert heads.on_event(event(7, 4, H[4], H[3])) is None  # warned once: no longer checked
    assert heads.held == {7: Head(2, H[2])}  # the head the person saw stays


def test_sync_entries_send_the_held_hash_where_it_names_the_position() -> None:
    heads = Heads("e" * 32, {1: Head(4, H[4]), 2: Head(9, H[9]), 3: Head(2, H[2])})
    entries, sent = heads.sync_entries({1: 4, 2: 5, 4: 8})
    assert entries == [[1, 4, H[4]], [2, 5], [3, 2, H[2]], [4, 8]]
    assert sent == {1: Head(4, H[4]), 3: Head(2, H[2])}
    entries, _ = heads.sync_entries({1: 6})  # list moved the position on: resume from the head
    assert entries[0] == [1, 4, H[4]]


def test_sync_answers_are_checked_then_followed() -> None:
    heads = Heads("e" * 32, {1: Head(4, H[4]), 2: Head(3, H[3]), 3: Head(5, H[5])})
    _, sent = heads.sync_entries({1: 4, 2: 3, 3: 5})
    found = heads.on_sync(
        sent,
        [
            {"conv": 1, "seq": 4, "at": H[4], "head_seq": 6, "head": H[6]},
            {"conv": 2, "seq": 3, "at": None, "head_seq": 2, "head": H[2]},
            {"conv": 3, "seq": 5, "at": H[8], "head_seq": 5, "head": H[8]},
            {"conv": 9, "seq": 1, "at": None, "head_seq": 0, "head": None},  # not asked
            "junk",
        ],
    )
    assert found == [Rewind(2, 3, Why.SHORTER), Rewind(3, 5, Why.DIFFERS)]
    assert heads.held == {1: Head(6, H[6]), 2: Head(3, H[3]), 3: Head(5, H[5])}
    assert heads.alarmed == {2, 3}


def test_list_checks_held_heads_and_holds_new_ones() -> None:
    heads = Heads("e" * 32, {1: Head(4, H[4]), 2: Head(3, H[3]), 5: Head(1, H[1])})
    found = heads.on_list(
        [
            {"conv": 1, "last_seq": 6, "head": H[6]},
            {"conv": 2, "last_seq": 2, "head": H[2]},
            {"conv": 3, "last_seq": 7, "head": H[7]},
        ]
    )
    assert found == [Rewind(2, 3, Why.SHORTER), Rewind(5, 1, Why.SHORTER)]  # 5 is gone
    assert heads.held[1] == Head(4, H[4])  # later: sync will check it
    assert heads.held[3] == Head(7, H[7])


def test_a_declared_epoch_drops_the_heads_without_a_warning() -> None:
    heads = Heads("a" * 32, {1: Head(4, H[4])}, alarmed={1})
    assert heads.enter("a" * 32) is False and heads.held
    assert heads.enter("b" * 32) is True
    assert (heads.epoch, heads.held, heads.alarmed) == ("b" * 32, {}, set())
    assert heads.on_list([{"conv": 1, "last_seq": 2, "head": H[2]}]) == []
    fresh = Heads()
    assert fresh.enter("c" * 32) is False and fresh.epoch == "c" * 32


def test_the_warning_names_the_conversation_in_french_first() -> None:
    rewind = Rewind(12, 4, Why.SHORTER)
    assert "conversation 12" in rewind.sentence() and "WARNING" in rewind.sentence()
    VOICE.use("fr")
    try:
        said = rewind.sentence()
    finally:
        VOICE.use("en")
    assert said.startswith(
        "ATTENTION\u00a0: le serveur a réécrit l'historique de la conversation 12"
    )


# ----------------------------------------------------------------------------- the file


def test_heads_file_round_trip_private_and_merged(tmp_path: Path) -> None:
    path = tmp_path / "servers" / "x" / "heads-3.json"
    file = HeadsFile(path)
    assert file.load() == Heads()
    mine = Heads("e" * 32, {1: Head(4, H[4]), 2: Head(2, H[2])})
    file.save(mine)
    assert mine.changed is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert file.load().held == mine.held
    other = Heads("e" * 32, {1: Head(6, H[6]), 2: Head(1, H[1]), 3: Head(1, H[1])})
    file.save(other)  # another process: the later head of each conversation wins
    assert file.load().held == {1: Head(6, H[6]), 2: Head(2, H[2]), 3: Head(1, H[1])}
    path.write_text("{not json")
    assert file.load() == Heads()  # unreadable: one check fewer, never a crash


def test_merge_keeps_a_warned_head_and_the_latest_epoch() -> None:
    warned = Heads("e" * 32, {1: Head(4, H[4])}, alarmed={1})
    assert merge(warned, Heads("e" * 32, {1: Head(9, H[9])})).held == {1: Head(4, H[4])}
    newer = Heads("f" * 32, {2: Head(1, H[1])})
    assert merge(newer, Heads("e" * 32, {1: Head(9, H[9])})) is newer


def test_decode_leaves_out_what_is_malformed() -> None:
    data = encode(Heads("e" * 32, {1: Head(4, H[4])}))
    data["heads"] |= {"x": [1, H[1]], "2": [1, "nope"], "3": "junk", "4": [True, H[1]]}
    assert decode(json.loads(json.dumps(data))).held == {1: Head(4, H[4])}
    assert decode([1, 2]) == Heads()


# ----------------------------------------------------------------------------- the property


def chain(texts: list[str]) -> list[tuple[str, str]]:
    """(hash, prev_hash) of each event of a log whose events say ``texts``."""
    out: list[tuple[str, str]] = []
    prev = GENESIS
    for seq, text in enumerate(texts, 1):
        digest = hashlib.sha256(f"{prev}|{seq}|{text}".encode()).hexdigest()
        out.append((digest, prev))
        prev = digest
    return out


def serve(log: list[tuple[str, str]], entries: list[list[Any]]) -> tuple[list[Any], int]:
    """The server's ``heads`` for ``entries`` (one conversation, 1) and where it resumes."""
    answers = []
    resume = 0
    for conv, seq, *held in entries:
        resume = min(seq, len(log))
        if held:
            at = log[seq - 1][0] if 1 <= seq <= len(log) else None
            head = log[-1][0] if log else None
            answers.append({"conv": conv, "seq": seq, "at": at, "head_seq": len(log), "head": head})
    return answers, resume


texts = st.lists(st.sampled_from("abc"), min_size=1, max_size=12)


@given(seen=texts, kept=st.integers(0, 12), more=st.lists(st.sampled_from("abcd"), max_size=8))
def test_a_rewind_is_reported_exactly_when_the_log_does_not_extend_what_was_seen(
    seen: list[str], kept: int, more: list[str]
) -> None:
    """The client saw ``seen``; the server now serves ``seen[:kept] + more`` (an honest
    extension when ``kept`` covers ``seen``, else a rewind, possibly to the same length or
    with the same words at other places)."""
    server_texts = seen[:kept] + more
    client_log, server_log = chain(seen), chain(server_texts)
    heads = Heads("e" * 32)
    for seq, (digest, prev) in enumerate(client_log, 1):
        assert heads.on_event(event(1, seq, digest, prev)) is None
    entries, sent = heads.sync_entries({1: len(seen)})
    answers, resume = serve(server_log, entries)
    found = heads.on_sync(sent, answers)
    for seq in range(resume + 1, len(server_log) + 1):  # the events the server resends
        digest, prev = server_log[seq - 1]
        rewind = heads.on_event(event(1, seq, digest, prev))
        if rewind is not None:
            found.append(rewind)
    extends = server_log[: len(client_log)] == client_log
    assert (found == []) is extends, (found, seen, server_texts)
    assert len(found) <= 1  # said once
    if not extends:
        assert found[0].conv == 1 and found[0].seq == len(seen)


def test_cursors_drop_the_heads_with_the_held_seqs() -> None:
    """A fresh run: the held seqs are new, the heads come from the file with their epoch."""
    cursors = Cursors(heads=Heads("a" * 32, {1: Head(4, H[4])}))
    assert cursors.enter("a" * 32) is False and cursors.heads.held == {1: Head(4, H[4])}
    cursors.held[1] = 4
    assert cursors.enter("b" * 32) is True
    assert (cursors.held, cursors.heads.held, cursors.heads.epoch) == ({}, {}, "b" * 32)
