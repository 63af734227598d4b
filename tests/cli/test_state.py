"""What the client holds: cursors (the resume algorithm) and a conversation's log."""

from __future__ import annotations

from typing import Any

from clients.cli.protocol import Push
from clients.cli.state import ConversationLog, Cursors


def event(seq: int, kind: str = "message", conv: int = 5, **fields: Any) -> dict[str, Any]:
    return {"conv": conv, "seq": seq, "kind": kind, "sender": 1, "ts": 0, **fields}


def test_cursors_take_each_event_once_and_follow_archived() -> None:
    cursors = Cursors()
    cursors.hold(5, 3)
    assert cursors.apply(Push("event", event(3))) is None  # already held
    assert cursors.apply(Push("event", event(4))) is not None
    assert cursors.apply(Push("event", event(4))) is None  # a resume resending it
    assert cursors.apply(Push("event", event(1, conv=6))) is not None  # a new conversation
    assert cursors.held == {5: 4, 6: 1}
    assert cursors.apply(Push("archived", {"conv": 5, "window_start": 3})) is not None
    assert cursors.held[5] == 4  # never moves back
    cursors.apply(Push("archived", {"conv": 7, "window_start": 50}))
    assert cursors.held[7] == 49
    assert cursors.apply(Push("state", {"conv": 5, "read_seq": 4, "unread": 0})) is not None
    assert cursors.apply(Push("later_kind", {"conv": 5})) is None


def test_cursors_drop_what_they_hold_when_the_epoch_changes() -> None:
    cursors = Cursors()
    assert cursors.enter("a" * 32) is False  # the first epoch heard
    cursors.hold(5, 40)
    assert cursors.enter("a" * 32) is False and cursors.held == {5: 40}
    assert cursors.enter(None) is False and cursors.epoch == "a" * 32  # an older server
    assert cursors.enter("b" * 32) is True  # restored: seq 40 may be another event now
    assert cursors.held == {} and cursors.epoch == "b" * 32
    assert cursors.apply(Push("event", event(3))) is not None  # the window is taken again


def test_log_follows_name_and_members_as_of_the_newest_event() -> None:
    log = ConversationLog(5, me=1)
    assert log.add(event(3, "renamed", name="Nouveau"))
    assert not log.add(event(3, "renamed", name="Nouveau"))
    log.add(event(1, "created", name="Ancien", members=[1, 2]))  # an older page: no effect
    assert log.name == "Nouveau"
    log.add(event(4, "joined", user=3))
    log.add(event(5, "left", user=1))
    assert log.members == {3}
    assert log.member is False and log.first_seq == 1 and log.last_seq == 5
    assert [e["seq"] for e in log.ordered()] == [1, 3, 4, 5]


def test_pending_lines_stay_until_their_event_is_shown() -> None:
    log = ConversationLog(5)
    log.queued("a", "send", {"conv": 5, "text": "un"})
    log.queued("b", "send", {"conv": 5, "text": "deux"})
    log.acked("a", 7)  # the ack came before the push
    assert [p.client_msg_id for p in log.still_pending()] == ["a", "b"]
    log.add(event(7))
    assert [p.client_msg_id for p in log.still_pending()] == ["b"]
    log.dropped("b")  # refused by the server
    assert log.still_pending() == []
